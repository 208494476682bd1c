// A small server-sent-events client for tests: reads GET /v1/events with fetch and keeps every
// event (and heartbeat comment) it has seen, in order.
export interface SseEvent {
  id: string | null;
  event: string;
  data: any;
  receivedAt: number;
}

export interface SseClient {
  events: SseEvent[];
  comments: string[];
  status: number;
  /** Resolves with the first event (from `from` on) that satisfies pred. */
  waitFor(pred: (e: SseEvent) => boolean, timeoutMs?: number, from?: number): Promise<SseEvent>;
  close(): void;
  closed: Promise<void>;
}

export async function openEventStream(url: string): Promise<SseClient> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: abort.signal });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  const closed = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let id: string | null = null;
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length) events.push({ id, event, data: JSON.parse(data.join('\n')), receivedAt: Date.now() });
          for (const w of [...waiters]) w();
        }
      }
    } catch {
      /* aborted */
    }
    for (const w of [...waiters]) w();
  })();
  return {
    events,
    comments,
    status: res.status,
    closed,
    close: () => abort.abort(),
    waitFor(pred, timeoutMs = 30_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = events.slice(from).find(pred);
          if (hit) {
            cleanup();
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no matching event within ${timeoutMs} ms; saw: ${events.map((e) => `${e.event}${e.event === 'transition' ? ` ${e.data.nodeId} ${e.data.from}->${e.data.to}` : ''}`).join(', ')}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}
