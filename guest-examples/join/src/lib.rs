//! Revenue per country: orders joined with their customers.
//!
//! `weft run join.wasm -- <customers-uri> <orders-uri> <output-uri>` reads
//! customers (`id<TAB>country` lines) and orders (`customer-id<TAB>amount`
//! lines, amounts in cents), joins them on the customer id, and writes
//! `country<TAB>cents<TAB>orders` lines under the output URI: the sum of the
//! amounts of each country's orders and their number. Orders of unknown
//! customers count nowhere (an inner join); a malformed line fails the job,
//! naming it.

use weft::prelude::*;

/// Two tab-separated fields, the first the key.
fn fields(line: &str) -> weft::Result<(&str, &str)> {
    line.split_once('\t').ok_or_else(|| weft::Error::msg(format!("no tab in {line:?}")))
}

/// `id<TAB>country` as `(id, country)`.
#[weft::map]
fn customer(line: &str) -> weft::Result<(String, String)> {
    let (id, country) = fields(line)?;
    Ok((id.to_string(), country.to_string()))
}

/// `customer-id<TAB>amount` as `(customer-id, amount)`.
#[weft::map]
fn order(line: &str) -> weft::Result<(String, i64)> {
    let (id, amount) = fields(line)?;
    let amount = amount.trim().parse().map_err(|e| weft::Error::msg(format!("amount in {line:?}: {e}")))?;
    Ok((id.to_string(), amount))
}

/// A joined order as (country, (cents, 1)).
#[weft::map]
fn by_country((_id, (amount, country)): (String, (i64, String))) -> (String, (i64, i64)) {
    (country, (amount, 1))
}

#[weft::reduce]
fn total(a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
    (a.0 + b.0, a.1 + b.1)
}

/// One output line.
#[weft::map]
fn format((country, (cents, orders)): (String, (i64, i64))) -> String {
    format!("{country}\t{cents}\t{orders}")
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let [customers, orders, output] = args.as_slice() else {
        return Err(weft::Error::msg("usage: join <customers-uri> <orders-uri> <output-uri>"));
    };
    let customers = ctx.text_file(customers, 2)?.map(customer);
    let orders = ctx.text_file(orders, 4)?.map(order);
    let totals = orders.join(&customers, 4).map(by_country).reduce_by_key(total, 2);
    totals.map(format).save_as_text_file(output)?;
    weft::info!("{} countries", totals.count()?);
    Ok(())
}
