/* The page that embeds an A2I task template (rendered by tagloop in a sandboxed frame:
 * <iframe data-answer-url="..." sandbox="allow-scripts allow-forms">) sends what the
 * template's <crowd-form> submitted to tagloop as the signed-in reviewer's answer.
 *
 * Only messages from the embedded frame itself are taken. The answer is POSTed as JSON
 * ({"answerContent": ..., "seconds": ...}) with the page's CSRF token (<meta name="csrf-token">)
 * when it has one. Then the frame gets an "a2i:answered" event (detail: the server's answer);
 * unless a listener cancels it, a page that is itself framed by tagloop's review page tells
 * that page ({tagloop: "answered"}, same origin only), which shows the next task; a page of
 * its own goes to the frame's data-next-url, if it has one.
 *
 * The frame says its height ({type: "tagloop:a2i-size"}) and is sized to it; a page that is
 * itself in tagloop's review page then tells that page its own height ({tagloop: "size"}).
 */
(function () {
  "use strict";

  const shown = Date.now();

  function say(frame, message, failed) {
    const status = document.getElementById(frame.dataset.statusId || "a2i-status");
    if (!status) return;
    status.textContent = message;
    status.classList.toggle("a2i-failed", Boolean(failed));
  }

  async function send(frame, answerContent) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const csrf = document.querySelector('meta[name="csrf-token"]');
    if (csrf && csrf.content) headers["X-CSRF-Token"] = csrf.content;
    say(frame, "Sending…", false);
    let response;
    try {
      response = await fetch(frame.dataset.answerUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: headers,
        body: JSON.stringify({ answerContent: answerContent, seconds: (Date.now() - shown) / 1000 }),
      });
    } catch (error) {
      say(frame, "The answer could not be sent: " + error, true);
      return;
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      say(frame, (answer.error && answer.error.message) || "The answer was refused (" + response.status + ")", true);
      return;
    }
    say(frame, "Answer saved.", false);
    const event = new CustomEvent("a2i:answered", { detail: answer, cancelable: true, bubbles: true });
    if (!frame.dispatchEvent(event)) return;
    if (window.parent !== window) {
      // this page is itself in tagloop's review page (same origin): it shows the next task
      window.parent.postMessage({ tagloop: "answered", task: answer.task_id }, window.location.origin);
    } else if (frame.dataset.nextUrl) {
      window.location.assign(frame.dataset.nextUrl);
    }
  }

  // The frame takes the keyboard as soon as it is shown: its keys choose and submit.
  for (const frame of document.querySelectorAll("iframe[data-answer-url]")) {
    frame.addEventListener("load", () => frame.focus());
  }

  function tellSize() {
    if (window.parent === window) return;
    const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    window.parent.postMessage({ tagloop: "size", height: height }, window.location.origin);
  }
  if (window.ResizeObserver) new ResizeObserver(tellSize).observe(document.body);

  window.addEventListener("message", (event) => {
    const frames = document.querySelectorAll("iframe[data-answer-url]");
    const frame = Array.from(frames).find((candidate) => candidate.contentWindow === event.source);
    const data = event.data;
    if (frame && data && data.type === "tagloop:a2i-size" && Number.isFinite(data.height)) {
      frame.style.minHeight = "0";
      frame.style.height = Math.min(Math.max(Math.ceil(data.height), 120), 20000) + 2 + "px";
      tellSize();
      return;
    }
    if (!frame || !data || data.type !== "tagloop:a2i-answer" || typeof data.answerContent !== "object") return;
    send(frame, data.answerContent);
  });
})();
