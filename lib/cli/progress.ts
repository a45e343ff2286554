/** A progress bar on stderr (cli-progress) when stderr is a terminal; silent otherwise. */
import cliProgress from 'cli-progress';

export function progressBar(label: string, extra = '') {
  if (!process.stderr.isTTY) return { update: (_done: number, _total: number, _payload?: object) => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total} | eta {eta_formatted}${extra ? ` | ${extra}` : ''}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let stopped = false;
  return {
    update: (done: number, total: number, payload?: object) => {
      if (stopped) return;
      if (!started) bar.start(total, 0, payload), (started = true);
      bar.setTotal(total);
      bar.update(done, payload);
    },
    stop: () => {
      if (started && !stopped) bar.stop();
      stopped = true;
    },
  };
}

/** One bar per stage of a pipeline: a new stage label stops the last bar and starts the next. */
export function stagedProgress(width = 12) {
  let stage: string | undefined;
  let bar = progressBar('');
  return {
    update: (label: string, done: number, total: number) => {
      if (label !== stage) {
        bar.stop();
        stage = label;
        bar = progressBar(label.padEnd(width));
      }
      bar.update(done, total);
    },
    stop: () => bar.stop(),
  };
}
