// A virtualised list: only the rows in view exist in the DOM, so 5,000 rows cost what 30 do.
// Rows have a fixed height (CSS --row-h); elements are pooled and refilled on scroll or data change.
//
// Rendering never reads layout: the viewport's height and scroll position are kept from the
// ResizeObserver and scroll events that change them. A read of `clientHeight` or `scrollTop` after
// another table wrote its rows forced the browser to lay the whole page out in the middle of the
// frame (then again at its end). A row whose item and version are unchanged is not written again.

export class VirtualTable {
  /**
   * @param {HTMLElement} viewport - the scrolling element (fixed height via CSS)
   * @param {(el: HTMLElement, item: any, index: number) => void} fill - writes one row (textContent only)
   * @param {(item: any) => string} keyOf - the row's stable id (set as data-id)
   * @param {(item: any) => number} versionOf - changes whenever the item's rendered content does
   */
  constructor(viewport, fill, keyOf, versionOf = () => 0) {
    this.viewport = viewport;
    this.fill = fill;
    this.keyOf = keyOf;
    this.versionOf = versionOf;
    this.spacer = document.createElement("div");
    this.spacer.className = "vt-spacer";
    this.body = document.createElement("div");
    this.body.className = "vt-body";
    viewport.append(this.spacer, this.body);
    this.pool = [];
    this.count = 0;
    this.get = () => undefined;
    this.rowH = 0;
    this.height = 0; // viewport height, from the ResizeObserver
    this.scrollTop = 0; // from scroll events
    this._spacerH = -1;
    this._first = -1;
    this._dirty = true;
    viewport.addEventListener(
      "scroll",
      () => {
        this.scrollTop = viewport.scrollTop;
        this.render();
      },
      { passive: true },
    );
    new ResizeObserver((entries) => {
      const box = entries[entries.length - 1].contentRect;
      if (box.height !== this.height) {
        this.height = box.height;
        this._dirty = true;
      }
    }).observe(viewport);
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
      this.height = this.height || this.viewport.clientHeight;
    }
    const rowH = this.rowH;
    const height = this.height || 300;
    const first = Math.max(0, Math.floor(this.scrollTop / rowH) - 2);
    const visible = Math.max(0, Math.min(this.count - first, Math.ceil(height / rowH) + 4));
    const spacerH = this.count * rowH;
    if (spacerH !== this._spacerH) {
      this._spacerH = spacerH;
      this.spacer.style.height = `${spacerH}px`;
    }
    if (first !== this._first) {
      this._first = first;
      this.body.style.transform = `translateY(${first * rowH}px)`;
    }
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
          el._vtItem = el._vtVersion = undefined;
        }
        continue;
      }
      const item = this.get(first + i);
      const version = this.versionOf(item);
      if (el._vtItem === item && el._vtVersion === version && !el.hidden) continue;
      el._vtItem = item;
      el._vtVersion = version;
      el.hidden = false;
      el.dataset.id = this.keyOf(item);
      this.fill(el, item, first + i);
    }
    this._dirty = false;
  }

  /** Forget what the rows show (after a theme or filter change that `fill` depends on). */
  invalidate() {
    for (const el of this.pool) el._vtItem = undefined;
    this._dirty = true;
  }
}
