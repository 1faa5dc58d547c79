// grep in JavaScript: the lines of the input that contain a pattern.
//
// `weft local grep.wasm -- <pattern> <input-uri> <output-uri>` writes the
// matching lines under the output URI and logs how many there are, out of how
// many lines scanned. The pattern reaches the filter as its bound parameter
// (`matches.bind(pattern)`): tasks run in other instances of the component,
// so functions capture nothing from the driver.
import * as weft from "weft";

const { string } = weft.types;
const scanned = weft.accumulator("lines scanned");

/** Whether the line contains the pattern. */
const matches = weft.filter(
  "matches",
  string,
  (line, pattern) => {
    scanned.add(1);
    return line.includes(pattern);
  },
  { param: string },
);

weft.main((ctx) => {
  if (ctx.args.length !== 3) throw new Error("usage: grep <pattern> <input-uri> <output-uri>");
  const [pattern, src, out] = ctx.args;
  const lines = ctx.textFile(src, 4).filter(matches.bind(pattern)).cache();
  lines.saveAsTextFile(out);
  // Read before the next action: an accumulator added to in a transformation
  // counts again whenever a later action recomputes it.
  const total = scanned.value;
  weft.log.info(`${lines.count()} of ${total} lines contain ${JSON.stringify(pattern)}`);
});
