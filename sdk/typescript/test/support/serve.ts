/**
 * A real `sealtrail serve` child process on a free port, for the integration tests (the
 * TypeScript twin of tests/support/serve.py). The tokens come from its first-run output.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
export const SEALTRAIL = path.join(REPO, ".venv", "bin", "sealtrail");
export const PYTHON = path.join(REPO, ".venv", "bin", "python");
const TOKEN_LINE = /^\s+(\w+)\s+token\s+(st_\S+)$/gm;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface Served {
  dir: string;
  dataDir: string;
  url: string;
  proc: ChildProcess;
  tokens: Record<string, string>;
  stop(): Promise<void>;
  stderr(): string;
  /** A new API key of `role` in the tenant `default` (`sealtrail admin key create`). */
  createKey(role: string): string;
}

function requireVenv(): void {
  if (!existsSync(SEALTRAIL)) {
    throw new Error(`${SEALTRAIL} is missing: run \`make install\` in ${REPO} first`);
  }
}

/** Start `sealtrail serve` on a fresh data directory and wait until it answers /healthz. */
export async function startServe(timeoutMs = 60_000): Promise<Served> {
  requireVenv();
  const dir = mkdtempSync(path.join(tmpdir(), "sealtrail-ts-"));
  const dataDir = path.join(dir, "data");
  const port = await freePort();
  const outPath = path.join(dir, "serve.out");
  const errPath = path.join(dir, "serve.err");
  const proc = spawn(SEALTRAIL, ["serve", "--data-dir", dataDir, "--port", String(port)], {
    stdio: ["ignore", openSync(outPath, "w"), openSync(errPath, "w")],
  });
  const url = `http://127.0.0.1:${port}`;
  const stderr = (): string => (existsSync(errPath) ? readFileSync(errPath, "utf8") : "");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`sealtrail serve exited with ${proc.exitCode}: ${stderr().slice(-2000)}`);
    try {
      if ((await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`sealtrail serve did not answer within ${timeoutMs} ms: ${stderr().slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const tokens: Record<string, string> = {};
  for (const m of readFileSync(outPath, "utf8").matchAll(TOKEN_LINE)) tokens[m[1]!] = m[2]!;
  if (!tokens.gateway) throw new Error("sealtrail serve printed no gateway token");
  return {
    dir, dataDir, url, proc, tokens, stderr,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 20_000)))]);
        clearTimeout(timer);
        if (proc.exitCode === null) proc.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
    createKey(role: string) {
      const done = spawnSync(SEALTRAIL, ["admin", "key", "create", "--data-dir", dataDir, "--tenant", "default", "--role", role, "--json"], { encoding: "utf8", timeout: 60_000 });
      if (done.status !== 0) throw new Error(`sealtrail admin key create failed: ${done.stderr}`);
      return (JSON.parse(done.stdout) as { token: string }).token;
    },
  };
}

/** GET a JSON document with a bearer token; throws with the status and body on anything but 200. */
export async function getJson<T>(url: string, token: string): Promise<T> {
  const resp = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const text = await resp.text();
  if (resp.status !== 200) throw new Error(`GET ${url} answered ${resp.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/** Every entry header of a log through the query API (`GET /v1/logs/{log}/entries`). */
export async function logEntries(served: Served, token: string, log = "default"): Promise<Record<string, unknown>[]> {
  const cp = await fetch(`${served.url}/v1/logs/${log}/checkpoint`, { headers: { authorization: `Bearer ${token}` } });
  if (cp.status === 404) return [];
  const size = Number((await cp.text()).split("\n")[1]);
  const out: Record<string, unknown>[] = [];
  for (let start = 0; start < size; start += 500) {
    const end = Math.min(size, start + 500);
    const page = await getJson<{ entries: { entry: string }[] }>(`${served.url}/v1/logs/${log}/entries?start=${start}&end=${end}`, token);
    for (const e of page.entries) out.push(JSON.parse(Buffer.from(e.entry, "base64").toString("utf8")) as Record<string, unknown>);
  }
  return out;
}

/** Wait until a signed checkpoint of `log` covers `size` entries; return its size. */
export async function waitForCheckpoint(served: Served, token: string, size: number, log = "default", timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // a kept-alive connection the server closed meanwhile fails once: ask again
    const r = await fetch(`${served.url}/v1/logs/${log}/checkpoint`, { headers: { authorization: `Bearer ${token}` } })
      .catch(() => null);
    if (r === null) continue;
    if (r.status === 200) {
      const n = Number((await r.text()).split("\n")[1]);
      if (n >= size) return n;
    } else {
      await r.body?.cancel();
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`no checkpoint of ${log} covers ${size} entries after ${timeoutMs} ms`);
}

export function tempDir(prefix = "sealtrail-ts-"): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}
