// Repository fixture files (tests/fixtures/, path relative to it), handed in by tests/filter/as-pect.config.js.
// @ts-ignore: decorator
@external("fixtures", "bytes") export declare function fixtureBytes(path: string): ArrayBuffer;
// @ts-ignore: decorator
@external("fixtures", "text") export declare function fixtureText(path: string): string;
