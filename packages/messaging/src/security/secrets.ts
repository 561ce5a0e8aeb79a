import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { nkeys } from '@nats-io/nats-core';
import { MessagingError } from '../errors.ts';

const run = promisify(execFile);

/** Where an identity's nkey seed is, and its public key (what the server config names). */
export interface IdentityKey {
  readonly name: string;
  /** File holding the seed (`SU…`), mode 0600. */
  readonly seedFile: string;
  /** Public key `U…`. */
  readonly publicKey: string;
}

/** The TLS files of a private bus: a CA, and a server certificate it signed. */
export interface BusTlsFiles {
  /** CA certificate clients verify the server with. */
  readonly caFile: string;
  readonly certFile: string;
  /** Server key, mode 0600. */
  readonly keyFile: string;
}

export interface BusSecrets {
  readonly dir: string;
  readonly keys: ReadonlyMap<string, IdentityKey>;
  readonly tls?: BusTlsFiles;
}

export interface BusSecretsOptions {
  /** Generate a CA and a server certificate (default true). */
  tls?: boolean;
  /** Names and addresses the server certificate is valid for (default `localhost`, `127.0.0.1`). */
  hosts?: readonly string[];
  /** `openssl` binary (default from PATH). */
  openssl?: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads an nkey seed file (trailing whitespace ignored). */
export async function readSeedFile(path: string): Promise<Uint8Array> {
  const text = (await readFile(path, 'utf8')).trim();
  if (!/^SU[A-Z2-7]{56}$/.test(text)) {
    throw new MessagingError('INVALID_CONFIG', `${path} does not hold a user nkey seed (SU…)`);
  }
  return new TextEncoder().encode(text);
}

async function identityKey(dir: string, name: string): Promise<IdentityKey> {
  if (!/^[A-Za-z0-9_-]+$/.test(name))
    throw new MessagingError('INVALID_CONFIG', `bad identity name "${name}"`);
  const seedFile = join(dir, `${name}.nk`);
  if (!(await exists(seedFile))) {
    const kp = nkeys.createUser();
    await writeFile(seedFile, `${new TextDecoder().decode(kp.getSeed())}\n`, { mode: 0o600, flag: 'wx' });
  }
  await chmod(seedFile, 0o600);
  const kp = nkeys.fromSeed(await readSeedFile(seedFile));
  return { name, seedFile, publicKey: kp.getPublicKey() };
}

async function tlsFiles(dir: string, options: BusSecretsOptions): Promise<BusTlsFiles> {
  const openssl = options.openssl ?? 'openssl';
  const files = {
    caFile: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca-key.pem'),
    certFile: join(dir, 'server.pem'),
    keyFile: join(dir, 'server-key.pem'),
  };
  const hosts = options.hosts ?? ['localhost', '127.0.0.1'];
  const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    if (!(await exists(files.caFile)) || !(await exists(files.caKey))) {
      await run(openssl, [
        'req',
        '-x509',
        ...ec,
        '-keyout',
        files.caKey,
        '-out',
        files.caFile,
        '-days',
        '3650',
        '-subj',
        '/CN=orderflow development CA',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ]);
    }
    if (!(await exists(files.certFile)) || !(await exists(files.keyFile))) {
      const csr = join(dir, 'server.csr');
      const ext = join(dir, 'server.ext');
      await run(openssl, [
        'req',
        ...ec,
        '-keyout',
        files.keyFile,
        '-out',
        csr,
        '-subj',
        '/CN=orderflow nats-server',
      ]);
      await writeFile(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
      await run(openssl, [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        files.caFile,
        '-CAkey',
        files.caKey,
        '-CAcreateserial',
        '-out',
        files.certFile,
        '-days',
        '825',
        '-extfile',
        ext,
      ]);
    }
  } catch (cause) {
    throw new MessagingError(
      'INVALID_CONFIG',
      `cannot generate TLS files with ${openssl}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  await chmod(files.caKey, 0o600);
  await chmod(files.keyFile, 0o600);
  return { caFile: files.caFile, certFile: files.certFile, keyFile: files.keyFile };
}

/**
 * The nkey seeds of `identities` and (by default) a CA and server certificate, in `dir` (mode 0700;
 * secrets 0600). Idempotent: what exists is reused, what is missing is generated, so a restart keeps
 * every credential and a deleted file is replaced by a new one.
 */
export async function ensureBusSecrets(
  dir: string,
  identities: readonly string[],
  options: BusSecretsOptions = {},
): Promise<BusSecrets> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const keys = new Map<string, IdentityKey>();
  for (const name of identities) keys.set(name, await identityKey(dir, name));
  const tls = (options.tls ?? true) ? await tlsFiles(dir, options) : undefined;
  return { dir, keys, ...(tls && { tls }) };
}
