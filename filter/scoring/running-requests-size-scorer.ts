// running-requests-size-scorer (GIE): fewer running requests score higher, min-max normalised (all equal: 1).
// Running is as best known: the scraped count, or more when the proxy has sent more than the metrics show.
import { ScorerPlugin, Profile } from "./plugin";

export class RunningRequestsSizeScorer extends ScorerPlugin {
  join(profile: Profile): void {
    profile.runningWeight += this.weight;
  }
}

/** The term of an endpoint running `running`, among candidates running between `minRunning` and `maxRunning`. */
// @ts-ignore: decorator
@inline export function runningTerm(weight: f64, minRunning: f64, maxRunning: f64, running: f64): f64 {
  return maxRunning == minRunning ? weight : (weight * (maxRunning - running)) / (maxRunning - minRunning);
}
