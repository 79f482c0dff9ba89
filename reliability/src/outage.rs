//! stub

use crate::report::ItemReport;
use crate::Options;

pub async fn run(_opts: &Options) -> anyhow::Result<ItemReport> {
    anyhow::bail!("not built yet")
}
