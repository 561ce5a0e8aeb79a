/**
 * Who calls the gateway, and who may call what. A principal comes from a verified bearer token (see
 * `JwtAuthenticator`); routes state their access level once, in `app.ts` and in the OpenAPI document.
 */

/** The scope (in the token's `scope` claim, space-separated) that makes a caller an operator (default). */
export const OPERATOR_SCOPE = 'orderflow:operator';

export type Principal =
  /** A customer: acts only on their own orders and customer record. */
  | { readonly kind: 'customer'; readonly customerId: string; readonly subject: string }
  /** An operator: any order, dead letters, metrics; never a customer's own data by mistake (no id). */
  | { readonly kind: 'operator'; readonly subject: string };

/**
 * Who may call a route: `public` anyone (no token needed; a token sent anyway is still checked);
 * `authenticated` a customer or an operator (a customer only for their own resources); `operator` only
 * operators.
 */
export const Access = {
  Public: 'public',
  Authenticated: 'authenticated',
  Operator: 'operator',
} as const;
export type Access = (typeof Access)[keyof typeof Access];

/** The customer a request acts for: the caller's own id, or for an operator the one they name. */
export function ownerFilter(principal: Principal): { customerId?: string } {
  switch (principal.kind) {
    case 'customer':
      return { customerId: principal.customerId };
    case 'operator':
      return {};
    default:
      return principal satisfies never;
  }
}

/** Whether `principal` may see what belongs to `customerId`. */
export function mayAccess(principal: Principal, customerId: string): boolean {
  switch (principal.kind) {
    case 'customer':
      return principal.customerId === customerId;
    case 'operator':
      return true;
    default:
      return principal satisfies never;
  }
}

/** Key of the caller for per-client limits: the token's subject, else the peer address. */
export function clientKey(principal: Principal | undefined, address: string): string {
  return principal ? `${principal.kind}:${principal.subject}` : `addr:${address}`;
}
