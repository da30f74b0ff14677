// tagloop web UI: the review page's keys. No inline script anywhere (the CSP forbids it);
// answers travel by htmx (hx-post on the forms), this file only presses the buttons.
(function () {
  "use strict";

  var shownAt = performance.now(); // when the current task appeared
  var pressedAt = null; // when the key that is being answered was pressed
  var busy = false; // a request is in flight: further keys wait (no double answers)
  // milliseconds from each key press to the next task painted (read by benchmarks/review_ui.py)
  var timings = [];
  window.tagloopTimings = timings;

  function task() {
    return document.getElementById("task");
  }

  function keysDialog() {
    return document.getElementById("keys");
  }

  function toggleKeys(show) {
    var dialog = keysDialog();
    if (!dialog) return;
    dialog.hidden = show === undefined ? !dialog.hidden : !show;
    if (!dialog.hidden) {
      var close = document.getElementById("keys-close");
      if (close) close.focus();
    }
  }

  function press(element) {
    if (!element || busy) return false;
    busy = true;
    pressedAt = performance.now();
    element.click();
    return true;
  }

  function shown() {
    shownAt = performance.now();
    busy = false;
    if (pressedAt !== null) {
      var started = pressedAt;
      pressedAt = null;
      // after the next frame is painted: a timer queued from inside the frame's callback
      requestAnimationFrame(function () {
        setTimeout(function () {
          timings.push(performance.now() - started);
        }, 0);
      });
    }
  }

  // the time spent on a task goes with its answer
  document.addEventListener(
    "submit",
    function (event) {
      var field = event.target.querySelector && event.target.querySelector('input[name="seconds"]');
      if (field) field.value = ((performance.now() - shownAt) / 1000).toFixed(3);
    },
    true
  );

  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "task") shown();
  });
  document.addEventListener("htmx:responseError", function (event) {
    busy = false;
    pressedAt = null;
    var status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
    showNotice(status === 403 ? "refused (403): reload the page" : "the server answered " + status + ": try again");
  });
  document.addEventListener("htmx:sendError", function () {
    busy = false;
    pressedAt = null;
    showNotice("the server cannot be reached: try again");
  });

  function showNotice(text) {
    var current = task();
    if (!current) return;
    var notice = current.querySelector(".notice");
    if (!notice) {
      notice = document.createElement("p");
      notice.className = "notice error";
      notice.setAttribute("role", "alert");
      var stats = current.querySelector(".stats");
      current.insertBefore(notice, stats ? stats.nextSibling : current.firstChild);
    }
    notice.textContent = text;
  }

  // an A2I task template in an iframe (same origin) says when it has answered
  // (and says its height, which its iframe is sized to)
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin || !event.data) return;
    if (event.data.tagloop === "size" && isFinite(event.data.height)) {
      var frames = document.querySelectorAll("iframe.task-ui");
      for (var i = 0; i < frames.length; i++) {
        if (frames[i].contentWindow !== event.source) continue;
        frames[i].style.minHeight = "0";
        frames[i].style.height = Math.min(Math.max(Math.ceil(event.data.height), 120), 20000) + 2 + "px";
      }
      return;
    }
    if (event.data.tagloop !== "answered") return;
    var current = task();
    if (current && window.htmx) {
      window.htmx.ajax("GET", "/" + current.dataset.queue + "/next", { target: "#task", swap: "outerHTML" });
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest('[data-command="?"], #keys-close') : null;
    if (target) toggleKeys(target.id === "keys-close" ? false : undefined);
  });

  document.addEventListener("keydown", function (event) {
    var current = task();
    if (!current) return;
    var tag = event.target && event.target.tagName;
    if (tag === "INPUT" && event.target.type !== "checkbox") return;
    if (tag === "TEXTAREA" || tag === "SELECT") return;
    var key = event.key;
    if (key === "?") {
      event.preventDefault();
      toggleKeys();
      return;
    }
    var dialog = keysDialog();
    if (dialog && !dialog.hidden) {
      if (key === "Escape") {
        event.preventDefault();
        toggleKeys(false);
      }
      return;
    }
    if ((event.ctrlKey || event.metaKey) && !event.altKey && (key === "z" || key === "Z")) {
      event.preventDefault();
      press(current.querySelector('[data-command="u"]'));
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (key === "Enter") {
      event.preventDefault(); // not also a click on a focused button
      press(current.querySelector("#answer-form [data-accept]"));
      return;
    }
    key = key.length === 1 ? key.toLowerCase() : key;
    if (key === "s" || key === "u") {
      event.preventDefault();
      press(current.querySelector('[data-command="' + key + '"]'));
      return;
    }
    if (key.length !== 1) return;
    var choice = current.querySelector('#answer-form [data-key="' + (key === '"' || key === "\\" ? "" : key) + '"]');
    if (!choice || choice.dataset.key === "") return;
    event.preventDefault();
    if (current.dataset.mode === "multi") {
      var box = choice.querySelector('input[type="checkbox"]');
      if (box) box.checked = !box.checked;
    } else {
      press(choice);
    }
  });
})();
