// The built CLI (dist/cli.js, made by `npm test`'s build step), spawned as a user would run it, with its
// output split into lines.
import { spawn, type ChildProcess } from 'node:child_process';
import { onCleanup, when } from './helpers.js';

const CLI = new URL('../dist/cli.js', import.meta.url).pathname;

/** A running CLI with its output split into lines; killed after the test if still running. */
export class Cli {
  readonly child: ChildProcess;
  readonly stderr: string[] = [];
  readonly stdout: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #partial = { stdout: '', stderr: '' };

  constructor(args: string[], env: Record<string, string | undefined> = {}) {
    const merged = { ...process.env, ...env };
    if (!('DEBUG' in env)) delete merged.DEBUG;
    this.child = spawn(process.execPath, [CLI, ...args], { env: merged, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => this.#collect('stdout', d));
    this.child.stderr!.on('data', (d: Buffer) => this.#collect('stderr', d));
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    onCleanup(() => {
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
      return this.exited;
    });
  }

  /** Waits for an output line matching `pattern` on `stream`. */
  async line(pattern: RegExp, stream: 'stdout' | 'stderr' = 'stderr', ms = 5000): Promise<RegExpExecArray> {
    let match: RegExpExecArray | null = null;
    const lines = this[stream];
    await when(this.child[stream]!, ['data', 'end'], () => lines.some((l) => (match = pattern.exec(l)) !== null),
      `a line matching ${pattern} on ${stream}; got:\n${lines.join('\n')}`, ms);
    return match!;
  }

  /** The JSON log records (`--log json`) written so far. */
  records(): Array<Record<string, unknown>> {
    return this.stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Waits for the "listening" line and returns the port it names. */
  async port(): Promise<number> {
    const match = await this.line(/listening on 127\.0\.0\.1:(\d+)$/);
    return Number(match[1]);
  }

  /** Waits for the exit, bounded. */
  async exit(ms = 8000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`CLI did not exit within ${ms} ms`)), ms)));
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #collect(stream: 'stdout' | 'stderr', data: Buffer): void {
    const parts = (this.#partial[stream] + data.toString()).split('\n');
    this.#partial[stream] = parts.pop()!;
    this[stream].push(...parts);
  }
}

