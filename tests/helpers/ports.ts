// Ports for tests that bind several loopback addresses (the whole 127/8 is loopback on Linux).
import http from "node:http";

/** A port free on every address in `ips` (random tries until one binds everywhere). */
export async function freePortOn(ips: string[]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    const servers: http.Server[] = [];
    try {
      for (const ip of ips) {
        const s = http.createServer();
        await new Promise<void>((resolve, reject) => {
          s.once("error", reject);
          s.listen(port, ip, resolve);
        });
        servers.push(s);
      }
      return port;
    } catch {
      // in use somewhere: try another
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
  }
  throw new Error("no free port");
}
