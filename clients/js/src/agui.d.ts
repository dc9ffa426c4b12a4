/**
 * The AG-UI agent of tether-client. Not available in this version: the constructor throws.
 * Use `TetherEventSource` from `tether-client` meanwhile.
 */
export declare class TetherAgent {
  /** @throws always, in this version. */
  constructor();
}
