// What the viewer's and the studio's pages share: element lookup, HTML escaping, an
// image tag for /api/image, and a JSON fetch whose error answer becomes the thrown message.
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
const imgTag = (ref) => ref ? `<img loading="lazy" src="/api/image?ref=${encodeURIComponent(ref)}" alt="">` : `<img alt="">`;

async function api(path, opts) {
  const res = await fetch(path, opts);
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}
