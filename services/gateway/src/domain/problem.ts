import type { ValidationIssue } from '@orderflow/messaging';

/** One invalid field of a request: a JSON pointer into the body (or `header:<name>`, `path:<name>`). */
export interface InvalidField {
  readonly field: string;
  readonly message: string;
}

/** An RFC 7807 problem document, plus the stable `code` and the invalid fields when there are some. */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly errors?: readonly InvalidField[];
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  431: 'Request Header Fields Too Large',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** Builds a problem; `type` is a stable URI per code. */
export function problem(
  status: number,
  code: string,
  detail: string,
  errors?: readonly InvalidField[],
): Problem {
  return {
    type: `https://orderflow.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    code,
    ...(errors && errors.length > 0 && { errors }),
  };
}

/** Validation issues (JSON pointers) as invalid fields, prefixed (e.g. `/body`), at most 20. */
export function invalidFields(issues: readonly ValidationIssue[]): InvalidField[] {
  const seen = new Set<string>();
  const fields: InvalidField[] = [];
  for (const issue of issues) {
    const key = `${issue.path}\u0000${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    fields.push({ field: issue.path || '/', message: issue.message });
    if (fields.length >= 20) break;
  }
  return fields;
}

/** A 400 listing the invalid fields; the detail names them too. */
export function invalidRequest(fields: readonly InvalidField[]): Problem {
  const names = [...new Set(fields.map((f) => f.field))].join(', ');
  return problem(400, 'INVALID_REQUEST', `invalid field(s): ${names}`, fields);
}
