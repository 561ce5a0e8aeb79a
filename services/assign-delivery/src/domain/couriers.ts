/*
 * The courier pool and the rules of assignment, as data and pure functions. A courier serves one
 * country and carries at most `capacity` orders at once; `load` counts orders assigned to it and not
 * released. Nothing in the ordering flow reports a delivery as done, so load only drops on a release.
 */

export interface Courier {
  courierId: string;
  name: string;
  /** ISO 3166-1 alpha-2 country served. */
  country: string;
  capacity: number;
}

/** The pool seeded by default: two couriers in DE, one each in FR, NL, GB, US. */
export const DEFAULT_COURIERS: readonly Courier[] = [
  { courierId: 'de-blitz', name: 'Blitz Kurier', country: 'DE', capacity: 10_000 },
  { courierId: 'de-eilbote', name: 'Eilbote Berlin', country: 'DE', capacity: 10_000 },
  { courierId: 'fr-rapide', name: 'Rapide Livraison', country: 'FR', capacity: 10_000 },
  { courierId: 'nl-fiets', name: 'Fietskoerier', country: 'NL', capacity: 10_000 },
  { courierId: 'gb-swift', name: 'Swift Couriers', country: 'GB', capacity: 10_000 },
  { courierId: 'us-express', name: 'Express Freight', country: 'US', capacity: 10_000 },
];

/** Checks a pool (from configuration): every problem at once. */
export function poolProblems(pool: readonly Courier[]): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const c of pool) {
    if (!/^[A-Za-z0-9_-]{1,100}$/.test(c.courierId)) problems.push(`courier id "${c.courierId}" is invalid`);
    if (ids.has(c.courierId)) problems.push(`courier id "${c.courierId}" appears twice`);
    ids.add(c.courierId);
    if (!/^[A-Z]{2}$/.test(c.country))
      problems.push(`${c.courierId}: country "${c.country}" is not ISO alpha-2`);
    if (!Number.isInteger(c.capacity) || c.capacity < 0)
      problems.push(`${c.courierId}: capacity must be ≥ 0`);
    if (c.name.length === 0 || c.name.length > 200)
      problems.push(`${c.courierId}: name must be 1..200 chars`);
  }
  return problems;
}

/** A courier as the store sees it now. */
export type CourierLoad = {
  courierId: string;
  name: string;
  load: number;
  capacity: number;
};

/** Couriers to try, best first: the least loaded relative to capacity, then by id (stable). */
export function candidates(couriers: readonly CourierLoad[]): CourierLoad[] {
  return couriers
    .filter((c) => c.load < c.capacity)
    .sort((a, b) => a.load / a.capacity - b.load / b.capacity || a.courierId.localeCompare(b.courierId));
}

/** Why no courier: the country is not served at all, or every courier there is full. */
export function unavailableReason(country: string, servedCouriers: number): string {
  return servedCouriers === 0
    ? `no courier serves ${country}`
    : `all ${servedCouriers} couriers serving ${country} are at capacity`;
}

/** What to do with a `payment.authorized`, given what is known of the order. */
export type AssignDecision = 'wait' | 'skip_cancelled' | 'already_decided' | 'assign';

export function decideAssign(order: {
  known: boolean;
  cancelled: boolean;
  decided: boolean;
}): AssignDecision {
  if (order.decided) return 'already_decided';
  if (order.cancelled) return 'skip_cancelled';
  if (!order.known) return 'wait';
  return 'assign';
}
