import { after } from 'node:test';
import { sqlStoreConformance } from '../src/conformance.ts';
import { pgliteHarness } from './support.ts';

const harness = pgliteHarness();
after(() => harness.close());
sqlStoreConformance('PGlite', harness);
