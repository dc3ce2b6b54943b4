//! Grouping on dictionary codes: the operators that answer a `GROUP BY`
//! of one dictionary-encoded string column (`eventdata.eventname`) without
//! turning every row's code back into a string.
//!
//! - [`dict_group::DictionaryGroupBy`] groups decoded batches by their
//!   dictionary codes, with DataFusion's own accumulators;
//! - [`page_count::CountFromPages`] counts rows per value straight from a
//!   Parquet column's pages when the aggregation only counts rows of an
//!   unfiltered scan, with the page decoder in `pages`.
//!
//! [`GroupOnCodes`], a physical optimizer rule, puts one of them in place
//! of an `AggregateExec` that qualifies (`--query-group-on-codes false`
//! leaves every plan to DataFusion).

mod dict_group;
mod page_count;
mod pages;
mod shared;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use pages::count_chunk;

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode as _};
use datafusion::common::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::ExecutionPlan;

use dict_group::DictionaryGroupBy;
use page_count::CountFromPages;

/// The physical optimizer rule that puts [`CountFromPages`] or else
/// [`DictionaryGroupBy`] where it applies. Runs after DataFusion's own
/// rules.
#[derive(Debug, Default)]
pub struct GroupOnCodes;

impl PhysicalOptimizerRule for GroupOnCodes {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let swapped =
                node.downcast_ref::<AggregateExec>()
                    .and_then(|agg| match CountFromPages::try_new(agg) {
                        Some(exec) => Some(Arc::new(exec) as Arc<dyn ExecutionPlan>),
                        None => DictionaryGroupBy::try_new(agg)
                            .map(|exec| Arc::new(exec) as Arc<dyn ExecutionPlan>),
                    });
            Ok(match swapped {
                Some(exec) => Transformed::yes(exec),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "group_on_dictionary_codes"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
