/**
 * Where validation's problems go: a capped list with exact counts, and the mixed-format
 * check, which can only judge the first records once the detection window is full.
 */
import type { DatasetFormat } from "./conversation";
import type { FormatDetector } from "./formats";
import type { DatasetProblem, DatasetProblemCode } from "./problems";

/** Keeps the first `limit` problems, exact counts of all of them, and per-line tallies. */
export class ProblemCollector {
  readonly counts: Partial<Record<DatasetProblemCode, number>> = {};
  private readonly kept: DatasetProblem[] = [];
  omitted = 0;
  linesWithErrors = 0;
  linesWithWarnings = 0;

  constructor(private readonly limit: number) {}

  addLine(problems: readonly DatasetProblem[]): void {
    if (problems.length === 0) return;
    if (problems.some((problem) => problem.severity === "error")) this.linesWithErrors++;
    else this.linesWithWarnings++;
    for (const problem of problems) this.add(problem);
  }

  add(problem: DatasetProblem): void {
    this.counts[problem.code] = (this.counts[problem.code] ?? 0) + 1;
    if (this.kept.length < this.limit) this.kept.push(problem);
    else this.omitted++;
  }

  /** A warning found after its line was tallied (mixed format, judged once the window is full). */
  addLate(problem: DatasetProblem, lineHadProblems: boolean): void {
    if (!lineHadProblems) this.linesWithWarnings++;
    this.add(problem);
  }

  sorted(): DatasetProblem[] {
    return this.kept.sort((a, b) => a.line - b.line || (a.column ?? 0) - (b.column ?? 0));
  }
}

/**
 * Flags records whose format differs from the dominant one. The dominant format is only
 * known once the detection window is full, so records inside the window are held (line and
 * format, nothing else) and judged then.
 */
export class MixedFormatCheck {
  private held: { line: number; format: DatasetFormat; lineHasProblems: boolean }[] = [];

  constructor(
    private readonly detector: FormatDetector,
    private readonly collector: ProblemCollector,
  ) {}

  /** The problem for this line when it can be judged now; held lines are reported by the collector later. */
  observe(line: number, format: DatasetFormat, lineHasProblems: boolean): DatasetProblem | undefined {
    if (!this.detector.settled) {
      this.detector.observe(format);
      this.held.push({ line, format, lineHasProblems });
      if (this.detector.settled) this.finish();
      return undefined;
    }
    return format === this.detector.dominant ? undefined : this.problem(line, format);
  }

  finish(): void {
    for (const { line, format, lineHasProblems } of this.held) {
      if (format !== this.detector.dominant) this.collector.addLate(this.problem(line, format), lineHasProblems);
    }
    this.held = [];
  }

  private problem(line: number, format: DatasetFormat): DatasetProblem {
    const dominant = this.detector.dominant as DatasetFormat;
    return {
      line,
      severity: "warning",
      code: "mixed_format",
      message: `this record is ${format}, but the file is ${dominant} (the most common of its first ${this.detector.sampled} records); mixed formats usually mean two files were joined by mistake`,
    };
  }
}
