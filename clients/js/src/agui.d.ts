import { AbstractAgent } from '@ag-ui/client';
import type { AgentConfig, AgentSubscriber, RunAgentParameters, RunAgentResult } from '@ag-ui/client';
import type { AgentCapabilities, BaseEvent, RunAgentInput } from '@ag-ui/core';
import type { Observable } from 'rxjs';
import type { ReconnectCause, TetherEventSourceOptions } from './index.js';

export { TetherEventSource } from './index.js';

/** What {@link TetherAgent}'s connection is doing, as `onConnection` reports it. */
export type TetherConnection =
  | { state: 'idle' }
  /** A response is streaming; `responses` counts them within the current observable. */
  | { state: 'connected'; responses: number }
  /** The connection was lost; attempt `attempt` starts in `delay` ms. */
  | { state: 'reconnecting'; attempt: number; delay: number; cause: ReconnectCause }
  /** History was lost (`reason` from `tether.resync`): the state starts again from a prelude. */
  | { state: 'resynced'; reason: string; resumeFrom?: string }
  /**
   * The observable ended: `ended` (the run is over, or the stream was closed), `superseded`
   * (another tab or request took the thread's stream over), `error` or `detached`.
   */
  | { state: 'stopped'; reason: 'ended' | 'superseded' | 'error' | 'detached' };

/** Options of {@link TetherAgent}: AG-UI's agent config, the transport's, and these. */
export interface TetherAgentConfig
  extends AgentConfig,
    Pick<
      TetherEventSourceOptions,
      | 'token'
      | 'tokenInQuery'
      | 'headers'
      | 'withCredentials'
      | 'clientId'
      | 'heartbeatTimeout'
      | 'maxRetryMs'
      | 'healthyAfterMs'
      | 'onAuthError'
      | 'fetch'
      | 'random'
    > {
  /** Where tether's routes are (`/api/agui/run`, `/api/sse/session/{threadId}`). Default: the page's origin. */
  url?: string | URL;
  /**
   * Keep `connect()` attached after a run ends, to see the thread's next runs (an agent that
   * continues after an approval decided elsewhere). Default `false`: it completes with the run.
   */
  follow?: boolean;
  /**
   * Where the thread's last event id is kept, so a reloaded page reattaches after it.
   * Default `sessionStorage` where there is one; `null` keeps it in memory only.
   */
  storage?: Pick<Storage, 'getItem' | 'setItem'> | null;
  /** The id to reattach after on the first connect. Default: the one in `storage`. */
  lastEventId?: string;
  /** Called whenever the connection's state changes. */
  onConnection?: (connection: TetherConnection) => void;
}

/**
 * An AG-UI agent on tether whose runs survive a lost connection and whose `connect()`
 * reattaches a reloaded page to the thread's run in progress.
 */
export declare class TetherAgent extends AbstractAgent {
  constructor(config?: TetherAgentConfig);
  /** Base URL of tether's routes, ending in `/`. */
  url: string;
  /** See {@link TetherAgentConfig.follow}. */
  follow: boolean;
  /** The connection's current state. */
  readonly connection: TetherConnection;
  /** The last event id seen on the agent's thread, or `null`. */
  readonly lastEventId: string | null;
  /** `{ transport: { streaming: true, resumable: true } }`. */
  getCapabilities(): Promise<AgentCapabilities>;
  /** `POST /api/agui/run`; a cut connection resumes with `Last-Event-ID` inside the same run. */
  run(input: RunAgentInput): Observable<BaseEvent>;
  /** `GET /api/sse/session/{threadId}`, `prelude=always` on its first request only. */
  protected connect(input: RunAgentInput): Observable<BaseEvent>;
  /** Runs the agent; a resync mid-run continues through `connectAgent()`. */
  runAgent(parameters?: RunAgentParameters, subscriber?: AgentSubscriber): Promise<RunAgentResult>;
  /** Reattaches; a resync starts a fresh observable from the prelude until one ends without. */
  connectAgent(parameters?: RunAgentParameters, subscriber?: AgentSubscriber): Promise<RunAgentResult>;
  /** Closes the stream in progress. */
  abortRun(): void;
}
