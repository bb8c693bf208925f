// Numbers, durations and dates as the extension's pages show them to people.
(function (exports) {
  "use strict";

  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December"];
  const COUNT = new Intl.NumberFormat("en-US");

  // A p-value as the agent's reports write it (agent/verify/report.py format_p): three significant digits,
  // scientific below 0.001 ("4.21e-07"), a dash when there is none.
  function formatP(p) {
    if (typeof p !== "number" || !Number.isFinite(p)) return "—";
    if (p < 1e-3) {
      const [mantissa, exponent] = p.toExponential(2).split("e");
      return `${mantissa}e${exponent[0]}${exponent.slice(1).padStart(2, "0")}`;
    }
    return String(Number(p.toPrecision(3)));
  }

  // 4100 -> "4,100".
  function formatCount(value) {
    return COUNT.format(value);
  }

  // "1 photo", "4,100 queries".
  function plural(count, one, many) {
    return `${formatCount(count)} ${count === 1 ? one : many}`;
  }

  // A rough duration: "8 s", "20 s" (to 5 s), "3 min", "1 h 5 min".
  function formatDuration(seconds) {
    const s = Math.max(0, Number(seconds) || 0);
    const rounded = s < 10 ? Math.max(1, Math.round(s)) : Math.round(s / 5) * 5;
    if (rounded < 60) return `${rounded} s`;
    const minutes = Math.max(1, Math.round(s / 60));
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  }

  // "March 2026" from an ISO timestamp, in the timestamp's own calendar (as the agent's report does); null when
  // there is none.
  function monthYear(iso) {
    const match = /^(\d{4})-(\d{2})/.exec(String(iso || ""));
    if (!match || Number(match[2]) < 1 || Number(match[2]) > 12) return null;
    return `${MONTHS[Number(match[2]) - 1]} ${match[1]}`;
  }

  // An ISO timestamp in the reader's local time ("Dec 4, 2026, 11:30 PM"); `options` may fix locale and
  // timeZone (tests do). Text that is no date comes back as it is.
  function localDateTime(iso, options) {
    const {locale, timeZone} = options || {};
    const date = new Date(iso);
    if (!iso || Number.isNaN(date.getTime())) return iso ? String(iso) : "—";
    return date.toLocaleString(locale, {dateStyle: "medium", timeStyle: "short", timeZone});
  }

  Object.assign(exports, {formatP, formatCount, plural, formatDuration, monthYear, localDateTime});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
