import { Subscription, type Observable, type Observer, type Subscriber } from 'rxjs';

export interface SourceHandlers<T> {
  next(value: T): void;
  /** Runs before the error is passed downstream (default: pass it through). */
  error?(err: unknown): void;
  /** Runs before completion is passed downstream (default: pass it through). */
  complete?(): void;
}

/**
 * The source side of a hand-written operator. RxJS treats an observer that is also a Subscription
 * as the subscriber itself, so a synchronous source sees `closed` the moment the consumer
 * unsubscribes (the plain `source.subscribe({ next })` form would keep a firehose running), and a
 * handler that throws (a user callback, a consumer's `next`) errors the output instead of escaping.
 */
class SourceObserver<T> extends Subscription implements Observer<T> {
  constructor(
    private readonly destination: Subscriber<unknown>,
    private readonly handlers: SourceHandlers<T>,
  ) {
    super();
  }

  next(value: T): void {
    if (this.closed) return;
    try {
      this.handlers.next(value);
    } catch (err) {
      this.error(err);
    }
  }

  error(err: unknown): void {
    if (this.closed) return;
    this.unsubscribe();
    this.handlers.error?.(err);
    this.destination.error(err);
  }

  complete(): void {
    if (this.closed) return;
    this.unsubscribe();
    try {
      this.handlers.complete?.();
    } catch (err) {
      this.destination.error(err);
      return;
    }
    this.destination.complete();
  }
}

/** Subscribes `handlers` to `source` on behalf of `destination`, tied to its lifetime. */
export function operate<T>(source: Observable<T>, destination: Subscriber<unknown>, handlers: SourceHandlers<T>): Subscription {
  const observer = new SourceObserver(destination, handlers);
  destination.add(observer);
  source.subscribe(observer);
  return observer;
}
