/** An entry of a {@link TimerQueue}: the queue keeps `heapIndex` current (−1 when not queued). */
export interface TimerNode {
  heapIndex: number;
}

/**
 * The virtual scheduler's binary min-heap of timers ordered by (time, sequence). Keys live in
 * typed arrays beside the entries, so sifting compares contiguous numbers instead of visiting
 * timer objects scattered over the heap: with ten thousand timers that is most of the cost.
 */
export class TimerQueue<T extends TimerNode> {
  private items: T[] = [];
  private times = new Float64Array(64);
  private seqs = new Float64Array(64);
  private count = 0;

  get size(): number {
    return this.count;
  }

  peek(): T | undefined {
    return this.count === 0 ? undefined : this.items[0];
  }

  /** Time of the earliest entry; +∞ when empty. */
  peekTime(): number {
    return this.count === 0 ? Infinity : (this.times[0] as number);
  }

  /** Queues `node`, or moves it if it is queued already. */
  set(node: T, time: number, seq: number): void {
    let i = node.heapIndex;
    if (i < 0) {
      if (this.count === this.times.length) this.grow();
      i = this.count++;
      this.items[i] = node;
      this.times[i] = time;
      this.seqs[i] = seq;
      this.up(i);
      return;
    }
    const later = time > (this.times[i] as number) || (time === this.times[i] && seq > (this.seqs[i] as number));
    this.times[i] = time;
    this.seqs[i] = seq;
    if (later) this.down(i);
    else this.up(i);
  }

  remove(node: T): void {
    const i = node.heapIndex;
    if (i < 0) return;
    node.heapIndex = -1;
    const last = --this.count;
    if (i === last) {
      this.items.length = last;
      return;
    }
    const moved = this.items[last] as T;
    this.items[i] = moved;
    this.times[i] = this.times[last] as number;
    this.seqs[i] = this.seqs[last] as number;
    moved.heapIndex = i;
    this.items.length = last;
    this.up(i);
    this.down(moved.heapIndex);
  }

  private grow(): void {
    const times = new Float64Array(this.times.length * 2);
    const seqs = new Float64Array(this.seqs.length * 2);
    times.set(this.times);
    seqs.set(this.seqs);
    this.times = times;
    this.seqs = seqs;
  }

  private up(i: number): void {
    const { items, times, seqs } = this;
    const node = items[i] as T;
    const time = times[i] as number;
    const seq = seqs[i] as number;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = times[p] as number;
      if (pt < time || (pt === time && (seqs[p] as number) < seq)) break;
      const parent = items[p] as T;
      items[i] = parent;
      times[i] = pt;
      seqs[i] = seqs[p] as number;
      parent.heapIndex = i;
      i = p;
    }
    items[i] = node;
    times[i] = time;
    seqs[i] = seq;
    node.heapIndex = i;
  }

  private down(i: number): void {
    const { items, times, seqs } = this;
    const n = this.count;
    const node = items[i] as T;
    const time = times[i] as number;
    const seq = seqs[i] as number;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      let ct = times[c] as number;
      let cs = seqs[c] as number;
      const r = c + 1;
      if (r < n) {
        const rt = times[r] as number;
        const rs = seqs[r] as number;
        if (rt < ct || (rt === ct && rs < cs)) {
          c = r;
          ct = rt;
          cs = rs;
        }
      }
      if (time < ct || (time === ct && seq < cs)) break;
      const child = items[c] as T;
      items[i] = child;
      times[i] = ct;
      seqs[i] = cs;
      child.heapIndex = i;
      i = c;
    }
    items[i] = node;
    times[i] = time;
    seqs[i] = seq;
    node.heapIndex = i;
  }
}
