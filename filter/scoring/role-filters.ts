// llm-d-router's role filters over the pods' `llm-d.ai/role` label (snapshot section 7): decode-filter keeps
// decode-capable pods and pods without the label; prefill-filter keeps prefill-capable pods only;
// encode-filter keeps encode-capable pods only (encode, encode-prefill, encode-prefill-decode). A pod whose
// label llm-d does not know passes none.
import { Snapshot, POD_ROLE_DECODE, POD_ROLE_PREFILL, POD_ROLE_ENCODE } from "../snapshot";
import { EndpointFilter } from "./plugin";

export class DecodeFilter extends EndpointFilter {
  keeps(snap: Snapshot, i: i32): bool {
    const role = snap.roleOf(i);
    return role == 0 || (role & POD_ROLE_DECODE) != 0;
  }
}

export class PrefillFilter extends EndpointFilter {
  keeps(snap: Snapshot, i: i32): bool {
    return (snap.roleOf(i) & POD_ROLE_PREFILL) != 0;
  }
}

export class EncodeFilter extends EndpointFilter {
  keeps(snap: Snapshot, i: i32): bool {
    return (snap.roleOf(i) & POD_ROLE_ENCODE) != 0;
  }
}
