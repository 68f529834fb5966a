// A virtualised list: only the rows in view exist in the DOM, so 5,000 rows cost what 30 do.
// Rows have a fixed height (CSS --row-h); elements are pooled and refilled on scroll or data change.

export class VirtualTable {
  /**
   * @param {HTMLElement} viewport - the scrolling element (fixed height via CSS)
   * @param {(el: HTMLElement, item: any, index: number) => void} fill - writes one row (textContent only)
   * @param {(item: any) => string} keyOf - the row's stable id (set as data-id)
   */
  constructor(viewport, fill, keyOf) {
    this.viewport = viewport;
    this.fill = fill;
    this.keyOf = keyOf;
    this.spacer = document.createElement("div");
    this.spacer.className = "vt-spacer";
    this.body = document.createElement("div");
    this.body.className = "vt-body";
    viewport.append(this.spacer, this.body);
    this.pool = [];
    this.count = 0;
    this.get = () => undefined;
    this.rowH = 0;
    this._dirty = true;
    viewport.addEventListener("scroll", () => this.render(), { passive: true });
  }

  /** Point the table at new data: `count` rows, `get(i)` returns the i-th (0 = top). */
  setData(count, get) {
    this.count = count;
    this.get = get;
    this._dirty = true;
  }

  render() {
    if (!this.rowH) {
      this.rowH = parseFloat(getComputedStyle(this.viewport).getPropertyValue("--row-h")) || 24;
    }
    const rowH = this.rowH;
    const height = this.viewport.clientHeight || 300;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / rowH) - 2);
    const visible = Math.min(this.count - first, Math.ceil(height / rowH) + 4);
    this.spacer.style.height = `${this.count * rowH}px`;
    this.body.style.transform = `translateY(${first * rowH}px)`;
    while (this.pool.length < visible) {
      const el = document.createElement("div");
      el.className = "vt-row";
      this.body.append(el);
      this.pool.push(el);
    }
    for (let i = 0; i < this.pool.length; i += 1) {
      const el = this.pool[i];
      if (i >= visible) {
        if (!el.hidden) {
          el.hidden = true;
          el.removeAttribute("data-id");
        }
        continue;
      }
      const item = this.get(first + i);
      el.hidden = false;
      el.dataset.id = this.keyOf(item);
      this.fill(el, item, first + i);
    }
    this._dirty = false;
  }
}
