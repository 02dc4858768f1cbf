// DOM helpers. Every value from the server goes in with textContent (the "text"
// attribute of el), never as HTML.

export const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

export function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}
