// Entry point: TensorBoard imports this module in the plugin's iframe and calls render().
//
// TensorBoard may load it as .../attnflows/index.js or as .../attnflows/static/index.js; the other
// modules always live in the static folder, so they are imported from there explicitly.

const here = new URL(import.meta.url);
const STATIC = here.pathname.endsWith("/static/index.js") ? new URL("./", here) : new URL("./static/", here);

// Every module of the tab and its stylesheet, asked for at once: imported one level at a time they took
// four round trips before the first request for data (tests/plugin/test_routes.py keeps this list whole).
export const MODULES = [
  "aggregate.js", "api.js", "app.js", "colormaps.js", "compare.js", "display.js", "dom.js", "explain.js", "flow.js",
  "headdetail.js", "headgrid.js", "influence.js", "legend.js", "lifetimes.js", "limits.js", "lru.js", "painter.js",
  "panel.js", "picker.js", "segments.js", "state.js", "timeline.js", "tokenaxis.js", "view.js", "views.js",
];

function preload() {
  for (const name of MODULES) {
    document.head.append(Object.assign(document.createElement("link"), {rel: "modulepreload", href: new URL(name, STATIC).href}));
  }
  document.head.append(Object.assign(document.createElement("link"),
    {rel: "preload", as: "style", href: new URL("style.css", STATIC).href}));
}

export async function render() {
  preload();
  const {start} = await import(new URL("app.js", STATIC).href);
  return start(STATIC);
}
