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
 * handler that throws (a user callback, a consumer's `next`) becomes an error instead of escaping.
 */
class LinkedObserver<T> extends Subscription implements Observer<T> {
  constructor(private readonly observer: Observer<T>) {
    super();
  }

  next(value: T): void {
    if (this.closed) return;
    try {
      this.observer.next(value);
    } catch (err) {
      this.error(err);
    }
  }

  error(err: unknown): void {
    if (this.closed) return;
    this.unsubscribe();
    this.observer.error(err);
  }

  complete(): void {
    if (this.closed) return;
    this.unsubscribe();
    try {
      this.observer.complete();
    } catch (err) {
      this.observer.error(err);
    }
  }
}

/**
 * Subscribes `observer` to `source` for the lifetime of `downstream`; what its end means is left to
 * the observer (an operator whose output outlives its input, e.g. open windows still to decide).
 */
export function follow<T>(source: Observable<T>, downstream: Subscription, observer: Observer<T>): Subscription {
  const linked = new LinkedObserver(observer);
  downstream.add(linked);
  source.subscribe(linked);
  return linked;
}

/** Subscribes `handlers` to `source` on behalf of `destination`; error and completion pass through. */
export function operate<T>(source: Observable<T>, destination: Subscriber<unknown>, handlers: SourceHandlers<T>): Subscription {
  return follow(source, destination, {
    next: value => handlers.next(value),
    error: err => {
      handlers.error?.(err);
      destination.error(err);
    },
    complete: () => {
      handlers.complete?.();
      destination.complete();
    },
  });
}
