// DOM helpers: every piece of data reaches the page through textContent or attributes, never markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.setAttribute("class", value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "checked" || key === "disabled" || key === "selected") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  return node;
}

function append(node, children) {
  for (const child of [].concat(children ?? [])) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** el("div", {class: "x", text: "hello"}, [children]): strings become text nodes. */
export function el(tag, attrs, children) {
  return append(apply(document.createElement(tag), attrs), children);
}

export function svgEl(tag, attrs, children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** A message in place of an empty panel: kind is "info", "warn" or "error". */
export function message(kind, title, detail) {
  return el("div", {class: `af-msg af-msg-${kind}`, role: kind === "error" ? "alert" : "status"}, [
    el("div", {class: "af-msg-title", text: title}),
    detail ? el("div", {class: "af-msg-detail", text: detail}) : null,
  ]);
}

/** Run fn on click, and on Enter or Space while the node has focus (a keyboard-usable list item). */
export function onActivate(node, fn) {
  node.addEventListener("click", () => fn());
  node.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      fn();
    }
  });
  return node;
}

export function select(options, value, onChange, attrs) {
  const node = el("select", attrs, options.map(([v, label]) => el("option", {value: v, text: label})));
  node.value = value;
  node.addEventListener("change", () => onChange(node.value));
  return node;
}

/** Download a Blob under a file name built from data, reduced to safe characters. */
export function download(blob, name) {
  const safe = name.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 120);
  const url = URL.createObjectURL(blob);
  const a = el("a", {href: url, download: safe, style: {display: "none"}});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export const fmt = {
  num(x, digits = 3) {
    if (x === null || x === undefined || Number.isNaN(x)) return "n/a";
    if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) return x.toExponential(2);
    return Number(x.toFixed(digits)).toString();
  },
  pct(x) {
    return x === null || x === undefined ? "n/a" : `${(100 * x).toFixed(1)}%`;
  },
};
