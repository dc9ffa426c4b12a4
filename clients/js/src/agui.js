// `tether-client/agui`: the AG-UI agent (an AbstractAgent whose connect() resumes through
// TetherEventSource) is not part of this version. The entry point exists so that the
// package's export map is stable; importing it works, constructing the agent says why not.

/** Not available yet: constructing it throws. */
export class TetherAgent {
  constructor() {
    throw new Error(
      'tether-client/agui: TetherAgent is not available in this version of tether-client; ' +
        'use TetherEventSource from "tether-client" for now',
    );
  }
}
