// The SDK conformance job, in JavaScript: the same cases as the Rust one
// (tests/guests/conformance), with the same outputs, checked against native
// references by cli/tests/all/conformance.rs.
//
//   conformance <case> <uris...>
import * as weft from "weft";

const { string, i64, tuple, list } = weft.types;

const splitWords = weft.flatMap("split_words", string, string, (line) => line.split(/\s+/).filter((w) => w).map((w) => w.toLowerCase()));
const keyAndNumber = weft.map("key_and_number", string, tuple(string, i64), (line) => {
  const [key, number] = line.split(",");
  return [key, Number.parseInt(number, 10)];
});
const firstWordKey = weft.map("first_word_key", string, tuple(string, string), (line) => [line.split(" ", 1)[0], line]);
const joinLine = weft.map("join_line", tuple(string, tuple(i64, i64)), string, ([key, [l, r]]) => `${key}\t${l}\t${r}`);
const groupLine = weft.map("group_line", tuple(string, list(i64)), string, ([key, values]) => `${key}\t${values.sort((a, b) => a - b).join(",")}`);
const measure = weft.map("measure", string, string, (line) => {
  weft.accumulator("lines").add(1);
  weft.accumulator("bytes").add(new TextEncoder().encode(line).length);
  return line;
});
const contains = weft.filter("contains", string, (line, word) => line.includes(word), { param: string });
const rejectBad = weft.map("reject_bad", string, string, (line) => {
  if (line.includes("BAD")) throw new Error(`conformance: bad record ${JSON.stringify(line)}`);
  return line;
});
const divide = weft.map("divide", string, i64, (line) => Number(BigInt(line.length) / BigInt(line.length - line.length)));
const spin = weft.map("spin", string, string, () => {
  for (;;) {}
});
const grow = weft.map("grow", string, string, () => {
  const blocks = [];
  for (;;) blocks.push(new Uint8Array(1 << 20).fill(1));
});
function deeper(n) {
  return deeper(n + 1) + 1;
}
const recurse = weft.map("recurse", string, string, (line) => `${line} ${deeper(0)}`);
const hugeOutput = weft.flatMap("huge_output", string, string, () => Array.from({ length: 1024 }, () => "x".repeat(1 << 20)));
const hostile = { spin, grow, recurse };

weft.main((ctx) => {
  const [kase, ...uris] = ctx.args;
  switch (kase) {
    case "wordcount":
      ctx.textFile(uris[0], 4).flatMap(splitWords).countByValue(3).saveAsTextFile(uris[1]);
      break;
    case "join": {
      const left = ctx.textFile(uris[0], 2).map(keyAndNumber);
      const right = ctx.textFile(uris[1], 3).map(keyAndNumber);
      left.join(right, 4).map(joinLine).saveAsTextFile(uris[2]);
      break;
    }
    case "sort":
      ctx.textFile(uris[0], 3).map(firstWordKey).sortByKey(true, 4).values().saveAsTextFile(uris[1]);
      break;
    case "group":
      ctx.textFile(uris[0], 3).map(keyAndNumber).groupByKey(3).map(groupLine).saveAsTextFile(uris[1]);
      break;
    case "accumulate": {
      const n = ctx.textFile(uris[0], 4).map(measure).count();
      const [lines, bytes] = [weft.accumulator("lines").value, weft.accumulator("bytes").value];
      weft.log.info(`count=${n} lines=${lines} bytes=${bytes}`);
      break;
    }
    case "broadcast":
      ctx.textFile(uris[0], 3).filter(contains.bind(uris[2])).saveAsTextFile(uris[1]);
      break;
    case "cache": {
      const words = ctx.textFile(uris[0], 4).flatMap(splitWords).cache();
      const [first, again] = [words.count(), words.count()];
      const distinct = words.distinct(2).count();
      weft.log.info(`words=${first} again=${again} distinct=${distinct}`);
      break;
    }
    case "fail":
      ctx.textFile(uris[0], 2).map(rejectBad).count();
      break;
    case "panic":
      ctx.textFile(uris[0], 2).map(divide).count();
      break;
    case "giant":
      ctx.textFile(uris[0], 2).flatMap(hugeOutput).count();
      break;
    default:
      if (!hostile[kase]) throw new Error(`no case ${JSON.stringify(kase)}`);
      ctx.textFile(uris[0], 2).map(hostile[kase]).count();
  }
});
