// Prettier's configuration (`make format`; what it leaves alone: .prettierignore), with a small plugin for
// the AssemblyScript sources (the filter, its specs and the test modules of the emulator and benchmark).
//
// AssemblyScript puts decorators where TypeScript allows none: on functions and variables (`@inline
// function`, `@external("env", "f") declare function`, `@global export function`, `@lazy let`). Prettier's
// TypeScript parser refuses such files. Before parsing, the plugin hides each of these decorators in a
// marked block comment, and prints the comment back as the decorator it was, where it was. Class and member
// decorators (`@unmanaged class`, `@inline get`) are valid TypeScript and need no help.
import estree from "prettier/plugins/estree";
import typescript from "prettier/plugins/typescript";

const MARK = "assemblyscript-decorator:";
/** `@name` or `@name(args)`, args on one line (strings may hold parentheses). */
const DECORATOR = String.raw`@[A-Za-z_$][\w$]*(?:\((?:"[^"\n]*"|'[^'\n]*'|[^()"'\n])*\))?`;
/** Decorators that start a line and precede a declaration TypeScript does not let decorators on. */
const LEADING_DECORATORS = new RegExp(
  String.raw`^[ \t]*(?:${DECORATOR}\s+)+(?=(?:export\s+)?(?:declare\s+)?(?:function|let|const|var|enum|namespace)\b)`,
  "gm",
);

const assemblyscript = {
  parsers: {
    typescript: {
      ...typescript.parsers.typescript,
      astFormat: "assemblyscript-estree",
      preprocess: (text) =>
        text.replace(LEADING_DECORATORS, (decorators) =>
          decorators.replace(new RegExp(DECORATOR, "g"), (d) => `/*${MARK}${d}*/`),
        ),
    },
  },
  printers: {
    "assemblyscript-estree": {
      ...estree.printers.estree,
      printComment(path, options) {
        const comment = path.node;
        if (comment.type === "Block" && comment.value.startsWith(MARK)) return comment.value.slice(MARK.length);
        return estree.printers.estree.printComment(path, options);
      },
      // `<T>(x++)`: TypeScript reads `<T>x++` the same, so Prettier would drop the parentheses, but in
      // AssemblyScript a prefix cast binds tighter than a postfix ++/--: `(<T>x)++` does not compile.
      print(path, options, print, args) {
        const doc = estree.printers.estree.print(path, options, print, args);
        const { node, parent, key } = path;
        const castOperand = parent?.type === "TSTypeAssertion" && key === "expression";
        return castOperand && node.type === "UpdateExpression" && !node.prefix ? ["(", doc, ")"] : doc;
      },
    },
  },
};

/** @type {import("prettier").Config} */
export default {
  printWidth: 120,
  tabWidth: 2,
  useTabs: false,
  semi: true,
  singleQuote: false,
  quoteProps: "as-needed",
  trailingComma: "all",
  bracketSpacing: true,
  arrowParens: "always",
  endOfLine: "lf",
  overrides: [
    {
      files: ["filter/**/*.ts", "tests/filter/**/*.ts", "tests/emulator/module/**/*.ts"],
      options: { plugins: [assemblyscript] },
    },
  ],
};
