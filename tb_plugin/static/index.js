// Entry point: TensorBoard imports this module in the plugin's iframe and calls render().
//
// TensorBoard may load it as .../attnflows/index.js or as .../attnflows/static/index.js; the other
// modules always live in the static folder, so they are imported from there explicitly.

const here = new URL(import.meta.url);
const STATIC = here.pathname.endsWith("/static/index.js") ? new URL("./", here) : new URL("./static/", here);

export async function render() {
  const {start} = await import(new URL("app.js", STATIC).href);
  return start(STATIC);
}
