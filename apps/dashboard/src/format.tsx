import { STATUS_DESCRIPTIONS } from '@tasker/states';
import type { TaskStatus } from './api.ts';

/** A status, coloured by its `.badge.<status>` rule (style.css), its meaning on hover. */
export function StatusBadge({ status, cancelling }: { status: TaskStatus; cancelling?: boolean }) {
  return (
    <span
      className={`badge ${status.toLowerCase()}`}
      data-status={status}
      title={STATUS_DESCRIPTIONS[status]}
    >
      {status}
      {cancelling && status === 'RUNNING' ? ' (cancelling)' : ''}
    </span>
  );
}

/** The start of `text`, `chars` long, and … when there is more (`more`: the text was already cut). */
export const clip = (text: string, chars: number, more = false) =>
  text.length > chars || more ? `${text.slice(0, chars)}…` : text;

export function time(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${d.toLocaleTimeString(undefined, { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

export function duration(from: string | null | undefined, to: string | null | undefined): string {
  if (!from) return '—';
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function json(value: unknown): string {
  return value === undefined ? '' : JSON.stringify(value, null, 2);
}

/** The progress a handler reported: {percent?, partial?, message?} (anything else is shown as JSON). */
export interface Progress {
  percent?: number;
  partial?: string;
  message?: string;
}

export function asProgress(value: unknown): Progress | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  return {
    percent: typeof v.percent === 'number' ? v.percent : undefined,
    partial: typeof v.partial === 'string' ? v.partial : undefined,
    message: typeof v.message === 'string' ? v.message : undefined,
  };
}
