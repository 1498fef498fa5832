/**
 * The heap under the bucketed timer queues (`streams/timerQueue.ts`, phiAccrual's wake queue): a
 * binary min-heap of buckets (one per distinct due time) in typed arrays — `heap[i]` the bucket at
 * position `i`, `keys[i]` its due time — each bucket's position kept in its link group,
 * `links[bucket * BUCKET_STRIDE + POSITION]`. Keys are distinct (a bucket per time). Plain
 * functions over the caller's arrays, so each queue keeps its own link layout around this field.
 */

/** Int32 fields per bucket in the callers' link arrays. */
export const BUCKET_STRIDE = 4;
/** The field of a bucket's link group that holds its heap position. */
export const POSITION = 2;

/** Puts `bucket`, due at `key`, at heap position `i` and records the position in its links. */
function place(heap: Int32Array, keys: Float64Array, links: Int32Array, i: number, bucket: number, key: number): void {
  heap[i] = bucket;
  keys[i] = key;
  links[bucket * BUCKET_STRIDE + POSITION] = i;
}

/** Places `bucket`, due at `key`, at heap position `i` or above it. */
export function siftUp(heap: Int32Array, keys: Float64Array, links: Int32Array, i: number, bucket: number, key: number): void {
  while (i > 0) {
    const p = (i - 1) >> 1;
    const parentKey = keys[p] as number;
    if (parentKey < key) break;
    place(heap, keys, links, i, heap[p] as number, parentKey);
    i = p;
  }
  place(heap, keys, links, i, bucket, key);
}

/** Places `bucket`, due at `key`, at heap position `i` or below it, in a heap of `size`. */
function siftDown(heap: Int32Array, keys: Float64Array, links: Int32Array, size: number, i: number, bucket: number, key: number): void {
  for (;;) {
    let c = 2 * i + 1;
    if (c >= size) break;
    let childKey = keys[c] as number;
    if (c + 1 < size) {
      const right = keys[c + 1] as number;
      if (right < childKey) {
        c++;
        childKey = right;
      }
    }
    if (key < childKey) break;
    place(heap, keys, links, i, heap[c] as number, childKey);
    i = c;
  }
  place(heap, keys, links, i, bucket, key);
}

/**
 * Takes `bucket` (due at `key`) out of a heap of `size` + 1 entries, `size` being the size after:
 * the last entry fills its place and moves up or down.
 */
export function removeAt(heap: Int32Array, keys: Float64Array, links: Int32Array, size: number, bucket: number, key: number): void {
  const i = links[bucket * BUCKET_STRIDE + POSITION] as number;
  if (i === size) return;
  const moved = heap[size] as number;
  const movedKey = keys[size] as number;
  if (movedKey > key) siftDown(heap, keys, links, size, i, moved, movedKey);
  else siftUp(heap, keys, links, i, moved, movedKey);
}
