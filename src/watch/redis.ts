/**
 * A private redis-server for measurements: its own temporary directory, a Unix socket there,
 * no TCP port, no RDB unless asked (BGSAVE writes into the temporary directory). stop() shuts
 * it down and removes the directory; so does the exit of this process, and Ctrl-C (the caller
 * aborts, then stops it in a finally). Plus a minimal RESP client over the socket.
 *
 *   const r = await startPrivateRedis();
 *   try { await r.client.command('SET', 'k', 'v'); } finally { await r.stop(); }
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CowlabError } from '../errors.js';
import { findTool } from '../util/tools.js';
import { sleep } from './proc.js';

export type Reply = string | number | null | Reply[] | Error;

/** A RESP2 client: commands are queued in order and their replies resolve in order (pipelining). */
export class RedisClient {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private closed: Error | null = null;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      for (;;) {
        const parsed = parseReply(this.buf, 0);
        if (parsed === null) break;
        this.buf = this.buf.subarray(parsed.end);
        this.waiting.shift()?.resolve(parsed.value);
      }
    });
    const fail = (err: Error) => {
      this.closed = err;
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new CowlabError('ERR_CHILD_FAILED', 'the connection to redis-server closed')));
  }

  static connect(path: string): Promise<RedisClient> {
    return new Promise((resolve, reject) => {
      const sock = connect(path);
      sock.once('connect', () => resolve(new RedisClient(sock)));
      sock.once('error', reject);
    });
  }

  /** Sends one command; resolves with its reply (an error reply rejects). */
  command(...args: (string | number | Buffer)[]): Promise<Reply> {
    if (this.closed) return Promise.reject(this.closed);
    const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
    for (const a of args) {
      const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
      parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
    }
    return new Promise<Reply>((resolve, reject) => {
      this.waiting.push({ resolve: (r) => (r instanceof Error ? reject(r) : resolve(r)), reject });
      this.sock.write(Buffer.concat(parts));
    });
  }

  /** INFO <section> as a map of fields. */
  async info(section: string): Promise<Record<string, string>> {
    const text = String(await this.command('INFO', section));
    const out: Record<string, string> = {};
    for (const line of text.split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
    }
    return out;
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Parses one RESP2 reply from `b` at `at`; null when incomplete. */
function parseReply(b: Buffer, at: number): { value: Reply; end: number } | null {
  const eol = b.indexOf('\r\n', at);
  if (eol < 0) return null;
  const type = String.fromCharCode(b[at]!);
  const line = b.toString('utf8', at + 1, eol);
  if (type === '+') return { value: line, end: eol + 2 };
  if (type === '-') return { value: new Error(line), end: eol + 2 };
  if (type === ':') return { value: Number(line), end: eol + 2 };
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, end: eol + 2 };
    if (b.length < eol + 2 + n + 2) return null;
    return { value: b.toString('utf8', eol + 2, eol + 2 + n), end: eol + 2 + n + 2 };
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return { value: null, end: eol + 2 };
    const out: Reply[] = [];
    let end = eol + 2;
    for (let i = 0; i < n; i++) {
      const r = parseReply(b, end);
      if (r === null) return null;
      out.push(r.value);
      end = r.end;
    }
    return { value: out, end };
  }
  throw new CowlabError('ERR_CHILD_FAILED', `redis-server sent a reply cowlab cannot read (type '${type}')`);
}

export interface PrivateRedis {
  pid: number;
  socket: string;
  dir: string;
  version: string;
  client: RedisClient;
  /** Shuts the server down (SHUTDOWN NOSAVE, then SIGKILL after 3 s) and removes its directory. */
  stop(): Promise<void>;
}

/** The redis-server to run, or null (with the install hint in the caller's message). */
export function redisServerPath(): string | null {
  return findTool('redis-server');
}

export const REDIS_INSTALL_HINT = 'redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)';

const live = new Set<ChildProcess>();
let exitHook = false;

/** Starts a private redis-server; rejects (and cleans up) when it does not answer within 10 s. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const server = redisServerPath();
  if (server === null) throw new CowlabError('ERR_TOOL_MISSING', REDIS_INSTALL_HINT);
  const dir = mkdtempSync(join(tmpdir(), 'cowlab-redis-'));
  const socket = join(dir, 'redis.sock');
  const args = ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', join(dir, 'redis.log'), '--bind', '127.0.0.1'];
  const proc = spawn(server, args, { stdio: 'ignore', detached: false });
  live.add(proc);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const p of live) p.kill('SIGKILL');
    });
  }
  let exited = false;
  proc.once('exit', () => {
    exited = true;
    live.delete(proc);
  });
  const cleanup = async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      for (let i = 0; i < 60 && !exited; i++) await sleep(50);
      if (!exited) proc.kill('SIGKILL');
      for (let i = 0; i < 20 && !exited; i++) await sleep(50);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  let client: RedisClient | null = null;
  try {
    for (let i = 0; i < 200 && client === null; i++) {
      if (exited) break;
      try {
        client = await RedisClient.connect(socket);
      } catch {
        await sleep(50);
      }
    }
    if (client === null) {
      let log = '';
      try {
        log = readFileSync(join(dir, 'redis.log'), 'utf8').trim().split('\n').slice(-3).join('\n  ');
      } catch {
        // no log
      }
      throw new CowlabError('ERR_CHILD_FAILED', `redis-server did not answer on ${socket} within 10 s${log ? `; its log ends:\n  ${log}` : ''}`);
    }
    const info = await client.info('server');
    const c = client;
    return {
      pid: proc.pid!,
      socket,
      dir,
      version: info.redis_version ?? 'unknown',
      client: c,
      stop: async () => {
        try {
          // NOSAVE: no RDB; the server exits and the socket closes.
          await Promise.race([c.command('SHUTDOWN', 'NOSAVE').catch(() => null), sleep(2000)]);
        } finally {
          c.close();
          await cleanup();
        }
      },
    };
  } catch (err) {
    client?.close();
    await cleanup();
    throw err;
  }
}
