import { readFileSync } from 'node:fs';

/** A file the gateway serves as it is, with its headers. */
export interface StaticAsset {
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * The page runs only the script and style sheet it ships with and talks only to this origin; data
 * goes into the DOM as text (the script never builds HTML from strings).
 */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

// Read once, when the gateway starts: a missing file fails the start, not a request.
const asset = (file: string, contentType: string): StaticAsset => ({
  body: readFileSync(new URL(file, import.meta.url), 'utf8'),
  headers: { 'content-type': contentType, ...SECURITY_HEADERS },
});

/** The dashboard page (`GET /`, `GET /dashboard`). */
export const DASHBOARD_PAGE: StaticAsset = asset('./index.html', 'text/html; charset=utf-8');

/** What the page loads, by file name (`GET /dashboard/<file>`). */
export const DASHBOARD_ASSETS: ReadonlyMap<string, StaticAsset> = new Map([
  ['dashboard.mjs', asset('./dashboard.mjs', 'text/javascript; charset=utf-8')],
  ['dashboard.css', asset('./dashboard.css', 'text/css; charset=utf-8')],
  // The operations console (operators; its data comes from `/console/…` with the operator's token).
  ['console.html', asset('./console.html', 'text/html; charset=utf-8')],
  ['console.mjs', asset('./console.mjs', 'text/javascript; charset=utf-8')],
  ['console.css', asset('./console.css', 'text/css; charset=utf-8')],
]);
