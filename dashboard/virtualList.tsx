import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

/**
 * A list that renders only the rows in view (and a few around): 50,000 rows cost what 30 do.
 * Rows have one fixed height; scrolling re-renders at most once a frame.
 */
export function VirtualList<T>({ items, rowHeight, height, row, testId }: { items: readonly T[]; rowHeight: number; height: number; row: (item: T, index: number) => ComponentChildren; testId?: string }) {
  const [top, setTop] = useState(0);
  const frame = useRef<number | undefined>(undefined);
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => () => (frame.current === undefined ? undefined : cancelAnimationFrame(frame.current)), []);
  const onScroll = (): void => {
    if (frame.current !== undefined) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = undefined;
      setTop(box.current?.scrollTop ?? 0);
    });
  };
  const overscan = 6;
  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const last = Math.min(items.length, Math.ceil((top + height) / rowHeight) + overscan);
  const rows = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <div class="vrow" style={`transform:translateY(${i * rowHeight}px);height:${rowHeight}px`} key={i}>
        {row(items[i] as T, i)}
      </div>,
    );
  }
  return (
    <div class="vlist" ref={box} style={`height:${Math.min(height, Math.max(rowHeight, items.length * rowHeight))}px`} onScroll={onScroll} data-testid={testId} data-rows={items.length}>
      <div style={`height:${items.length * rowHeight}px;position:relative`}>{rows}</div>
    </div>
  );
}
