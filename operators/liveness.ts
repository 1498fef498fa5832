/** A liveness heartbeat from one agent. Arrival time is what counts; `sentAt` is informational. */
export interface Heartbeat {
  readonly agentId: string;
  /** Sender's clock when the beat was sent (informational: detectors use arrival time). */
  readonly sentAt?: number;
  /** `'leaving'` announces a graceful departure: the agent is forgotten, never suspected. */
  readonly status?: 'ok' | 'leaving';
}

/** A detector's verdict about one agent. Failures are data, never Rx errors. */
export interface Liveness {
  readonly type: 'alive' | 'suspected' | 'left';
  readonly agentId: string;
  /** Scheduler time of the verdict. */
  readonly at: number;
  /** Suspicion level at `at` (phi for `phiAccrual`; elapsed / timeout for `heartbeatDeadline`). */
  readonly phi: number;
}
