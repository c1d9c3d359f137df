/**
 * One scheduler per daemon for background work (whole-layer fetch), with upstream's
 * priorities: on-demand reads come first. Background tasks start only after no foreground
 * work has run for `quietMs`; at most `maxConcurrency` run at once; a foreground read
 * aborts the running ones, which are retried once things are quiet again.
 */
export type BackgroundTask = (signal: AbortSignal) => Promise<void>;

interface Entry {
  readonly task: BackgroundTask;
  readonly done: (err?: unknown) => void;
  /** Failures not caused by preemption; the task is given up after MAX_FAILURES. */
  failures: number;
}

const MAX_FAILURES = 3;

export class BackgroundScheduler {
  private readonly queue: Entry[] = [];
  private readonly running = new Map<Entry, AbortController>();
  private lastForeground = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly maxConcurrency: number,
    private readonly quietMs: number,
  ) {}

  /** Marks foreground activity: pauses background work for `quietMs`. */
  foreground(): void {
    this.lastForeground = Date.now();
    for (const ctl of this.running.values()) ctl.abort(new Error('preempted by a foreground read'));
    this.kick();
  }

  /** Runs `task` in the background; resolves when it finally succeeds, rejects only when closed. */
  submit(task: BackgroundTask): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error('scheduler closed'));
      this.queue.push({ task, done: (err) => (err ? reject(err) : resolve()), failures: 0 });
      this.kick();
    });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const ctl of this.running.values()) ctl.abort(new Error('scheduler closed'));
    for (const e of this.queue.splice(0)) e.done(new Error('scheduler closed'));
  }

  private kick(): void {
    if (this.closed || this.queue.length === 0 || this.running.size >= this.maxConcurrency) return;
    const wait = this.lastForeground + this.quietMs - Date.now();
    if (wait > 0) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.kick(), wait);
      return;
    }
    while (this.queue.length > 0 && this.running.size < this.maxConcurrency) {
      const entry = this.queue.shift()!;
      const ctl = new AbortController();
      this.running.set(entry, ctl);
      entry.task(ctl.signal).then(
        () => {
          this.running.delete(entry);
          entry.done();
          this.kick();
        },
        (err: unknown) => {
          this.running.delete(entry);
          if (!ctl.signal.aborted) entry.failures++;
          if (this.closed) entry.done(new Error('scheduler closed'));
          else if (entry.failures >= MAX_FAILURES) entry.done(err);
          // Preempted, or failed fewer times than allowed: retried after the next quiet period.
          else this.queue.push(entry);
          this.kick();
        },
      );
    }
  }
}
