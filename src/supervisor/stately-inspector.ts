// `node-mgr start --inspect`: forwards the node actors' inspection events to Stately's inspector
// over a WebSocket (@statelyai/inspect). The package is ESM-only and brings its own `ws` client
// for Node; it is imported only when asked for, so a normal start never loads it.
//
// A local bridge serves the Stately UI and the socket, e.g.
//   node -e "import('@statelyai/inspect/server').then(m => m.createInspectorServer({ port: 8080 }))"
// (the UI page itself comes from stately.ai, so that part needs a browser with internet access).
import type { InspectionEvent, Observer } from 'xstate';

export const DEFAULT_STATELY_URL = 'ws://127.0.0.1:8080';

export interface StatelyInspection {
  /** Pass as SupervisorOptions.inspect / StartOptions.inspect. */
  observer: Observer<InspectionEvent>;
  stop(): void;
}

export async function connectStatelyInspector(url: string): Promise<StatelyInspection> {
  const { createWebSocketInspector } = await import('@statelyai/inspect');
  const inspector = createWebSocketInspector({
    url,
    // Until the socket is open, keep the most recent events (actor registrations come first).
    maxDeferredEvents: 1000,
  });
  return {
    observer: inspector.inspect,
    stop: () => inspector.stop(),
  };
}
