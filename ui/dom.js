// Small DOM helpers: elements built from data (never from HTML strings),
// so nothing a configuration holds can inject markup into the page.

/** h("tag.class", {attr: value, onclick: fn}, ...children) → an element. */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "value" && "value" in el) {
      el.value = value;
    } else if (name === "checked") {
      el.checked = Boolean(value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** A unique id for label/input pairs. */
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

/**
 * A labelled form field: the control, its label, an optional hint, and a
 * slot where the server's error for `name` (a field path) is shown.
 */
export function field(label, control, { hint, name } = {}) {
  const id = control.id || uid();
  control.id = id;
  const error = h("p.field-error", { id: `${id}-error`, role: "alert", hidden: true });
  const hintEl = hint ? h("p.hint", { id: `${id}-hint` }, hint) : null;
  control.setAttribute("aria-describedby", [hintEl && hintEl.id, error.id].filter(Boolean).join(" "));
  const wrap = h("div.field", { dataset: { field: name || "" } }, h("label", { for: id }, label), control, hintEl, error);
  return wrap;
}

/**
 * Shows each server field error next to its field (matched by the longest
 * field path prefix); returns the messages no field took.
 */
export function showFieldErrors(form, errors, prefix = "") {
  clearFieldErrors(form);
  const fields = [...form.querySelectorAll("[data-field]")].filter((f) => f.dataset.field);
  const rest = [];
  for (const e of errors) {
    const path = stripPrefix(e.field || "", prefix);
    let best = null;
    for (const f of fields) {
      const name = f.dataset.field;
      if ((path === name || path.startsWith(name + ".") || path.startsWith(name + "[")) &&
          (!best || name.length > best.dataset.field.length)) best = f;
    }
    if (best) {
      const slot = best.querySelector(".field-error");
      slot.hidden = false;
      slot.textContent = slot.textContent ? `${slot.textContent} ${e.message}` : e.message;
      const control = best.querySelector("input, select, textarea");
      if (control) control.setAttribute("aria-invalid", "true");
    } else {
      rest.push(e.field ? `${e.field}: ${e.message}` : e.message);
    }
  }
  const first = form.querySelector("[aria-invalid=true]");
  if (first) first.focus();
  return rest;
}

function stripPrefix(path, prefix) {
  if (!prefix) return path;
  if (prefix instanceof RegExp) return path.replace(prefix, "").replace(/^\./, "");
  if (path === prefix) return "";
  for (const sep of [".", ""]) {
    if (path.startsWith(prefix + sep)) return path.slice(prefix.length + sep.length);
  }
  return path;
}

/** Removes the field errors shown in `form`. */
export function clearFieldErrors(form) {
  for (const slot of form.querySelectorAll(".field-error")) {
    slot.hidden = true;
    slot.textContent = "";
  }
  for (const c of form.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
}

/** A short message in the live region. */
export function toast(message, kind = "ok") {
  const el = document.getElementById("toast");
  el.className = `toast ${kind}`;
  el.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.textContent = ""; el.className = "toast"; }, 6000);
}

/** A page heading, focused so that screen readers announce the new page. */
export function heading(text, ...extra) {
  return h("div.page-head", {}, h("h1", { tabindex: "-1" }, text), ...extra);
}

/** A table from rows: columns are [header, (row) => cell]. */
export function table(caption, columns, rows, { empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p.muted", {}, empty);
  return h("div.table-wrap", { tabindex: "0", role: "region", "aria-label": caption },
    h("table", {},
      h("caption.visually-hidden", {}, caption),
      h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row))))))));
}

/** Tabs (a tablist with panels), keyboard-operable with the arrow keys. */
export function tabs(label, entries) {
  const list = h("div.tabs", { role: "tablist", "aria-label": label });
  const panels = [];
  const buttons = entries.map(([title, panel], i) => {
    const id = uid("tab");
    panel.id = `${id}-panel`;
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", id);
    panel.hidden = i !== 0;
    panels.push(panel);
    return h("button", {
      type: "button", role: "tab", id, "aria-controls": panel.id,
      "aria-selected": i === 0 ? "true" : "false", tabindex: i === 0 ? "0" : "-1",
    }, title);
  });
  const select = (i) => {
    buttons.forEach((b, j) => {
      b.setAttribute("aria-selected", i === j ? "true" : "false");
      b.tabIndex = i === j ? 0 : -1;
      panels[j].hidden = i !== j;
    });
    buttons[i].focus();
    list.dispatchEvent(new CustomEvent("tabchange", { detail: i }));
  };
  buttons.forEach((b, i) => {
    b.addEventListener("click", () => select(i));
    b.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight") select((i + 1) % buttons.length);
      if (e.key === "ArrowLeft") select((i + buttons.length - 1) % buttons.length);
    });
  });
  list.append(...buttons);
  return { list, panels, select };
}

/** Lines of a textarea, trimmed, without the empty ones. */
export function lines(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

/** A copy-to-clipboard button for `text()`. */
export function copyButton(label, text) {
  return h("button.secondary", {
    type: "button",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text());
        toast("Copied.");
      } catch {
        toast("The browser refused the clipboard: select the text and copy it.", "error");
      }
    },
  }, label);
}

/** An ISO time, shown in the reader's locale. */
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** Shows the current page again, from fresh data (its clean-up runs first). */
export function reload() {
  window.dispatchEvent(new Event("komainu:reload"));
}
