/**
 * Side-by-side timing: each case runs in alternating rounds within one process, and each figure is
 * the median over rounds, so that a noisy neighbour slows every case alike and ratios stay fair.
 */
export interface BenchCase {
  readonly name: string;
  readonly run: () => unknown;
}

export interface BenchFigure {
  readonly name: string;
  /** Median time of one call, in microseconds. */
  readonly micros: number;
}

export function measure(cases: readonly BenchCase[], options: { rounds?: number; minRoundMillis?: number } = {}): BenchFigure[] {
  const rounds = options.rounds ?? 15;
  const minRoundMillis = options.minRoundMillis ?? 40;
  // Calibrate: how many calls of each case fill one round.
  const iterations = cases.map((c) => {
    for (let i = 0; i < 50; i++) c.run();
    let n = 1;
    for (;;) {
      const start = performance.now();
      for (let i = 0; i < n; i++) c.run();
      if (performance.now() - start >= minRoundMillis) return n;
      n *= 2;
    }
  });
  const samples = cases.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    cases.forEach((c, i) => {
      const n = iterations[i] as number;
      const start = performance.now();
      for (let k = 0; k < n; k++) c.run();
      (samples[i] as number[]).push(((performance.now() - start) * 1000) / n);
    });
  }
  return cases.map((c, i) => ({ name: c.name, micros: median(samples[i] as number[]) }));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
