// Type-aware lint for the whole monorepo (tests included).
import tseslint from 'typescript-eslint';

const SERVICES = [
  'assign-delivery',
  'create-invoice',
  'email-notify',
  'gateway',
  'order-status',
  'order-storage',
  'payment-processor',
  'payment-provider',
  'smtp-sink',
];
const betweenServices = {
  group: [...SERVICES.map((name) => `@orderflow/${name}`), ...SERVICES.map((name) => `**/${name}/src/**`)],
  message: 'services do not import each other: use the contracts (@orderflow/contracts) and the transport',
};
const natsOutsideAdapters = {
  group: ['@nats-io/*'],
  message: 'only adapters/ and main.ts use a NATS client; service code depends on the toolkit ports',
};

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', 'data/**', '.tmp/**', 'eslint.config.js'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
            },
          ],
        },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unsafe-enum-comparison': 'off',
    },
  },
  // The ports: service code sees toolkit interfaces only. A NATS client is used by adapters and picked
  // by the composition root (`main.ts`); a service never imports another service (it talks to it through
  // the contracts).
  {
    files: ['services/*/src/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [betweenServices] }] },
  },
  {
    files: ['services/*/src/**/*.ts'],
    ignores: ['services/*/src/adapters/**', 'services/*/src/main.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [betweenServices, natsOutsideAdapters] }] },
  },
  {
    files: ['**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      parserOptions: { projectService: false },
      globals: { process: 'readonly', console: 'readonly' },
    },
  },
);
