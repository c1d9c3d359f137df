/**
 * TOC `modtime`: RFC 3339 in UTC, whole seconds, omitted for the Unix epoch (Go's
 * `formatModtime`). Reading accepts any RFC 3339 time; one that does not parse counts as
 * zero, as the Go reader ignores the parse error.
 */
import type { TarTime } from './tar.js';

export const ZERO_TIME: TarTime = { sec: 0, nsec: 0 };

/** Writer side: round to the nearest second (halves up), `""` when the seconds are 0. */
export function formatModtime(t: TarTime): string {
  if (t.sec === 0) return '';
  const sec = t.nsec >= 5e8 ? t.sec + 1 : t.sec;
  const d = new Date(sec * 1000);
  if (Number.isNaN(d.getTime())) return '';
  const y = d.getUTCFullYear();
  const year = y < 0 ? '-' + String(-y).padStart(4, '0') : String(y).padStart(4, '0');
  const two = (n: number) => String(n).padStart(2, '0');
  return `${year}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}T${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}Z`;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Reader side: RFC 3339 → seconds + nanoseconds; `""` or anything invalid → zero. */
export function parseModtime(s: string): TarTime {
  const m = RFC3339.exec(s);
  if (!m) return ZERO_TIME;
  const [year, month, day, hour, min, sec] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || hour > 23 || min > 59 || sec > 59) return ZERO_TIME;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const daysInMonth = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  if (day < 1 || day > daysInMonth) return ZERO_TIME;
  let offset = 0;
  if (m[9] !== undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return ZERO_TIME;
    offset = (m[9] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  // Date.UTC maps years 0..99 to 1900..1999; setUTCFullYear does not.
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, min, sec, 0);
  return { sec: d.getTime() / 1000 - offset, nsec: Number((m[7] ?? '').padEnd(9, '0')) };
}
