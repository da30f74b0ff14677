/* tagloop's crowd elements: the Crowd HTML Elements that A2I text-classification task
 * templates use, as small custom elements served by tagloop (no framework, nothing remote).
 *
 * <crowd-form> wraps its content in a real <form> (so `required` fields are checked by the
 * browser) and adds a Submit button unless the template has one. On submit it builds
 * answerContent the way A2I does: every named input, select and textarea becomes a member
 * (text: its value; checkbox: true/false; radio group: the checked value; multiple select:
 * the list of chosen values), a <crowd-classifier name="x"> becomes {"x": {"label": ...}}
 * and a <crowd-classifier-multi-select name="x"> {"x": {"labels": [...]}}. The template's
 * own submit handlers run first and may cancel (event.preventDefault()). The answer goes to
 * the page that embeds this one (postMessage), which sends it to tagloop for the reviewer.
 */
(function () {
  "use strict";

  const MESSAGE = "tagloop:a2i-answer";

  function categoriesOf(element) {
    const raw = element.getAttribute("categories") || "[]";
    for (const text of [raw, raw.replace(/'/g, '"')]) {
      try {
        const parsed = JSON.parse(text);
        if (Array.isArray(parsed)) {
          return parsed.map((item) => (typeof item === "string" ? item : String(item.label || item.text || item)));
        }
      } catch (ignored) {
        /* try the next reading */
      }
    }
    return [];
  }

  function take(element, selector) {
    const found = Array.from(element.children).find((child) => child.matches(selector));
    if (found) found.remove();
    return found || null;
  }

  function block(tag, className, children) {
    const made = document.createElement(tag);
    if (className) made.className = className;
    for (const child of children) if (child) made.appendChild(child);
    return made;
  }

  function text(tag, content, className) {
    const made = document.createElement(tag);
    made.textContent = content;
    if (className) made.className = className;
    return made;
  }

  function instructions(short, full) {
    const parts = [];
    if (short) parts.push(block("div", "crowd-short-instructions", Array.from(short.childNodes)));
    if (full) {
      const details = block("details", "crowd-full-instructions", [
        text("summary", full.getAttribute("header") || "View full instructions"),
      ]);
      details.append(...Array.from(full.childNodes));
      parts.push(details);
    }
    return parts.length ? block("aside", "crowd-instructions-panel", parts) : null;
  }

  class Classifier extends HTMLElement {
    multiple() {
      return false;
    }

    connectedCallback() {
      if (this.built) return;
      this.built = true;
      const target = take(this, "classification-target");
      const short = take(this, "short-instructions");
      const full = take(this, "full-instructions");
      const name = this.getAttribute("name") || "category";
      const group = `crowd-${this.multiple() ? "labels" : "label"}-${name}`;
      const choices = block("fieldset", "crowd-categories", [text("legend", this.getAttribute("header") || "")]);
      categoriesOf(this).forEach((category, index) => {
        const input = document.createElement("input");
        input.type = this.multiple() ? "checkbox" : "radio";
        input.name = group;
        input.value = category;
        if (!this.multiple()) input.required = true;
        const label = block("label", "crowd-category", [input]);
        if (index < 9) label.appendChild(text("kbd", String(index + 1)));
        label.appendChild(text("span", category));
        choices.appendChild(label);
      });
      this.append(
        ...[
          instructions(short, full),
          block("section", "crowd-classifier-task", [
            target ? block("div", "crowd-classification-target", Array.from(target.childNodes)) : null,
            choices,
          ]),
        ].filter(Boolean),
      );
      this.inputs = Array.from(choices.querySelectorAll("input"));
    }

    get value() {
      const chosen = (this.inputs || []).filter((input) => input.checked).map((input) => input.value);
      return this.multiple() ? { labels: chosen } : { label: chosen.length ? chosen[0] : null };
    }

    choose(index) {
      const input = (this.inputs || [])[index];
      if (!input) return;
      input.checked = this.multiple() ? !input.checked : true;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }
  }

  class MultiClassifier extends Classifier {
    multiple() {
      return true;
    }
  }

  function fieldsOf(form) {
    const content = {};
    for (const element of Array.from(form.elements)) {
      const name = element.name;
      if (!name || element.disabled || element.closest("crowd-classifier, crowd-classifier-multi-select")) continue;
      const type = (element.type || "").toLowerCase();
      if (["submit", "button", "reset", "file", "image"].includes(type) || element.tagName === "FIELDSET") continue;
      if (type === "checkbox") content[name] = element.checked;
      else if (type === "radio") {
        if (element.checked) content[name] = element.value;
        else if (!(name in content)) content[name] = null;
      } else if (type === "select-multiple") {
        content[name] = Array.from(element.selectedOptions).map((option) => option.value);
      } else content[name] = element.value;
    }
    for (const classifier of form.querySelectorAll("crowd-classifier, crowd-classifier-multi-select")) {
      content[classifier.getAttribute("name") || "category"] = classifier.value;
    }
    return content;
  }

  class CrowdForm extends HTMLElement {
    connectedCallback() {
      if (this.form) return;
      const form = document.createElement("form");
      form.className = "crowd-form";
      form.append(...Array.from(this.childNodes));
      const submits = 'button[type="submit"], input[type="submit"], crowd-button[form-action="submit"]';
      if (!form.querySelector(submits)) {
        const submit = text("button", "Submit", "crowd-submit");
        submit.type = "submit";
        form.appendChild(block("div", "crowd-submit-row", [submit]));
      }
      this.appendChild(form);
      this.form = form;
    }

    /** What the template's form holds now, as answerContent. */
    get answerContent() {
      return fieldsOf(this.form);
    }

    send() {
      const answerContent = this.answerContent;
      this.classList.add("crowd-submitted");
      for (const button of this.form.querySelectorAll("button")) button.disabled = true;
      const message = { type: MESSAGE, answerContent: answerContent };
      if (window.parent !== window) window.parent.postMessage(message, "*");
      this.dispatchEvent(new CustomEvent("crowd-form-submitted", { detail: answerContent, bubbles: true }));
    }
  }

  // The template's own submit handlers (on the form, on <crowd-form>, on document) run first:
  // this listener is on window, the last stop of the bubbling event.
  window.addEventListener("submit", (event) => {
    const owner = event.target.closest && event.target.closest("crowd-form");
    if (!owner) return;
    const cancelled = event.defaultPrevented;
    event.preventDefault(); // never a navigation: the answer goes to the embedding page
    if (!cancelled && !owner.classList.contains("crowd-submitted")) owner.send();
  });

  class CrowdButton extends HTMLElement {
    connectedCallback() {
      if (this.button) return;
      const button = document.createElement("button");
      button.type = this.getAttribute("form-action") === "submit" ? "submit" : "button";
      button.className = `crowd-button crowd-button-${this.getAttribute("variant") || "normal"}`;
      button.disabled = this.hasAttribute("disabled");
      button.append(...Array.from(this.childNodes));
      this.appendChild(button);
      this.button = button;
    }
  }

  class CrowdInstructions extends HTMLElement {
    connectedCallback() {
      if (this.built) return;
      this.built = true;
      const details = block("details", "crowd-instructions", [
        text("summary", this.getAttribute("link-text") || "Instructions"),
      ]);
      details.append(...Array.from(this.childNodes));
      this.appendChild(details);
    }
  }

  class FullInstructions extends HTMLElement {
    connectedCallback() {
      if (this.built || this.closest("crowd-classifier, crowd-classifier-multi-select")) return;
      this.built = true;
      const details = block("details", "crowd-full-instructions", [
        text("summary", this.getAttribute("header") || "View full instructions"),
      ]);
      details.append(...Array.from(this.childNodes));
      this.appendChild(details);
    }
  }

  class Plain extends HTMLElement {}

  const elements = {
    "crowd-form": CrowdForm,
    "crowd-classifier": Classifier,
    "crowd-classifier-multi-select": MultiClassifier,
    "crowd-button": CrowdButton,
    "crowd-instructions": CrowdInstructions,
    "full-instructions": FullInstructions,
    "short-instructions": class extends Plain {},
    "classification-target": class extends Plain {},
    "short-summary": class extends Plain {},
    "detailed-instructions": class extends Plain {},
    "positive-example": class extends Plain {},
    "negative-example": class extends Plain {},
  };
  for (const [name, element] of Object.entries(elements)) {
    if (!customElements.get(name)) customElements.define(name, element);
  }

  // Keys, as on tagloop's own page: number keys choose a category when the page has one
  // classifier; Enter submits (outside text fields, buttons and selects, which keep theirs).
  document.addEventListener("keydown", (event) => {
    const forms = document.querySelectorAll("crowd-form");
    const own = event.target.closest && event.target.closest("textarea, button, select, input:not([type=radio]):not([type=checkbox])");
    if (event.key === "Enter" && !own && forms.length === 1 && forms[0].form) {
      event.preventDefault();
      forms[0].form.requestSubmit();
      return;
    }
    const classifiers = document.querySelectorAll("crowd-classifier, crowd-classifier-multi-select");
    const field =
      event.target.closest && event.target.closest("input:not([type=radio]):not([type=checkbox]), select, textarea");
    if (classifiers.length !== 1 || field || event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^[1-9]$/.test(event.key)) classifiers[0].choose(Number(event.key) - 1);
  });

  // The embedding page cannot read this page (an opaque origin): it is told its height, and
  // sizes the frame to it, so the template never scrolls inside a box of a guessed height.
  function tellSize() {
    if (window.parent === window || !document.body) return;
    const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    window.parent.postMessage({ type: "tagloop:a2i-size", height: height }, "*");
  }
  window.addEventListener("load", tellSize);
  if (window.ResizeObserver) {
    document.addEventListener("DOMContentLoaded", () => new ResizeObserver(tellSize).observe(document.body));
  }
})();
