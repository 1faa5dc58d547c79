// Word count in JavaScript: every word of the input with its number of occurrences.
//
// `weft local wordcount.wasm -- <input-uri> <output-uri>` writes `word<TAB>count`
// lines under the output URI and logs the ten most frequent words.
import * as weft from "weft";

const { string, i64, tuple } = weft.types;

/** The lowercased words of a line: its runs of characters other than white space. */
const splitWords = weft.flatMap("split_words", string, string, (line) => line.toLowerCase().match(/\S+/g) ?? []);

/** Key by count, to sort by it. */
const byCount = weft.map("by_count", tuple(string, i64), tuple(i64, string), ([word, n]) => [n, word]);

weft.main((ctx) => {
  if (ctx.args.length !== 2) throw new Error("usage: wordcount <input-uri> <output-uri>");
  const [src, out] = ctx.args;
  const counts = ctx.textFile(src, 4).flatMap(splitWords).countByValue().cache();
  counts.saveAsTextFile(out);
  weft.log.info(`${counts.count()} distinct words`);
  for (const [n, word] of counts.map(byCount).sortByKey(false, 4).take(10)) weft.log.info(`${word}: ${n}`);
});
