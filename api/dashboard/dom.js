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

// A table's header row; the columns at the indexes in ``numeric`` hold numbers and
// are aligned as their cells are (right).
export function headRow(labels, numeric = []) {
  return el("tr", {}, labels.map((label, index) => el("th", { class: numeric.includes(index) ? "num" : null, text: label })));
}

export function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

export function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}
