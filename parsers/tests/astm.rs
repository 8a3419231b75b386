use crate::harness::check_fixtures;
use foodgate_parsers::Protocol;
#[test]
fn fixtures() {
    check_fixtures(Protocol::Astm);
}
