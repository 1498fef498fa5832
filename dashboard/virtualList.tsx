import { Component, type ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

/** One row, drawn again only when its stamp changes (a batch moves a few rows of the 30 shown). */
class Row extends Component<{ stamp: readonly unknown[]; draw: () => ComponentChildren; height: number }> {
  override shouldComponentUpdate(next: { stamp: readonly unknown[]; height: number }): boolean {
    const stamp = this.props.stamp;
    if (next.height !== this.props.height || next.stamp.length !== stamp.length) return true;
    for (let i = 0; i < stamp.length; i++) if (next.stamp[i] !== stamp[i]) return true;
    return false;
  }

  override render() {
    return (
      <div class="vrow" style={`height:${this.props.height}px`}>
        {this.props.draw()}
      </div>
    );
  }
}

/**
 * A list that renders only the rows in view (and a few around): 50,000 rows cost what 30 do.
 * Rows have one fixed height and sit in one block moved to the first shown (one transform, not
 * one a row); a row is drawn again only when its `stamp` (what it shows) changes; scrolling
 * re-renders at most once a frame.
 */
export function VirtualList({ count, rowHeight, height, row, stamp, testId }: { count: number; rowHeight: number; height: number; row: (index: number) => ComponentChildren; stamp: (index: number) => readonly unknown[]; testId?: string }) {
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
  const last = Math.min(count, Math.ceil((top + height) / rowHeight) + overscan);
  const rows = [];
  for (let i = first; i < last; i++) rows.push(<Row key={i} stamp={stamp(i)} draw={() => row(i)} height={rowHeight} />);
  return (
    <div class="vlist" ref={box} style={`height:${Math.min(height, Math.max(rowHeight, count * rowHeight))}px`} onScroll={onScroll} data-testid={testId} data-rows={count}>
      <div style={`height:${count * rowHeight}px`}>
        <div style={`transform:translateY(${first * rowHeight}px)`}>{rows}</div>
      </div>
    </div>
  );
}
