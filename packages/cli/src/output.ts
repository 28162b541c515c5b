import { styleText } from 'node:util';
import type { TaskStatus } from '@tasker/states';

type Style = Parameters<typeof styleText>[0];

/** Colours on a terminal only (node:util styleText also honours NO_COLOR and FORCE_COLOR). */
export function paint(style: Style, text: string, stream: NodeJS.WriteStream = process.stdout): string {
  return styleText(style, text, { stream });
}

/** Each status its own colour (EXPIRED, a task that never ran, is grey). */
export const STATUS_STYLE: Readonly<Record<TaskStatus, Style>> = {
  PENDING: 'yellow',
  RUNNING: 'cyan',
  WAITING: 'blue',
  COMPLETED: 'green',
  FAILED: 'red',
  CANCELLED: 'magenta',
  EXPIRED: 'gray',
};

export function statusText(status: string, stream: NodeJS.WriteStream = process.stdout): string {
  return paint(STATUS_STYLE[status as TaskStatus] ?? 'reset', status, stream);
}

/** A value as the terminal shows it: text as it is, anything else as JSON. */
export function valueText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

/** The start of `text`, `chars` long, and … when there is more (`more`: the text was already cut). */
export const clip = (text: string, chars: number, more = false) =>
  text.length > chars || more ? `${text.slice(0, chars)}…` : text;

/** An ISO time as the tables show it: `2026-01-02 03:04:05Z`; `-` for none. */
export const time = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A table with aligned columns; `style` colours a cell after padding (so colours do not skew widths). */
export function printTable(
  rows: string[][],
  style: (row: number, column: number, text: string) => string = (_r, _c, t) => t,
): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  rows.forEach((row, r) => {
    const last = row.length - 1;
    const line = row.map((cell, c) => style(r, c, c === last ? cell : cell.padEnd(widths[c] ?? 0)));
    process.stdout.write(`${line.join('  ')}\n`);
  });
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * A spinner and a progress line on stderr while something long runs, on a terminal only (piped,
 * it stays silent). `text` changes it; `stop` erases it.
 */
export class Spinner {
  private timer: NodeJS.Timeout | undefined;
  private frame = 0;
  private line = '';
  private readonly started = Date.now();
  readonly enabled = Boolean(process.stderr.isTTY);

  text(line: string): void {
    this.line = line;
    if (!this.enabled) return;
    this.timer ??= setInterval(() => this.draw(), 80);
    this.draw();
  }

  private draw(): void {
    this.frame = (this.frame + 1) % FRAMES.length;
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1);
    process.stderr.write(
      `\r\x1b[K${paint('cyan', FRAMES[this.frame] ?? '', process.stderr)} ${this.line} ${paint('dim', `${seconds}s`, process.stderr)}`,
    );
  }

  stop(): void {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      process.stderr.write('\r\x1b[K');
    }
  }
}
