import pytest

from billing.catalog import CatalogError, UnknownPlan, load_catalog, parse_catalog
from billing.intervals import Interval, Line, Product


def plan(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "code": "essentiel",
        "product": "einvoicing",
        "name": "Essentiel",
        "prices": {"monthly": 1900, "annual": 19000},
        "quota": {"monthly": 50, "annual": 600},
        "overage": 25,
    }
    base.update(overrides)
    return base


def test_default_catalogue_has_einvoicing_plans_payments_addon_and_bundle() -> None:
    catalog = load_catalog()
    products = {p.product for p in catalog}
    assert products == {Product.EINVOICING, Product.PAYMENTS, Product.BUNDLE}
    bundle = next(p for p in catalog if p.product is Product.BUNDLE)
    assert bundle.lines == (Line.EINVOICING, Line.PAYMENTS)


def test_bundle_is_cheaper_than_its_parts_in_the_default_catalogue() -> None:
    catalog = load_catalog()
    bundle = catalog.plan("pack-essentiel")
    parts = catalog.plan("essentiel").price(Interval.MONTHLY) + catalog.plan("paiements").price(Interval.MONTHLY)
    assert bundle.price(Interval.MONTHLY) < parts


def test_plan_gives_price_and_quota_per_interval() -> None:
    catalog = parse_catalog([plan()])
    essentiel = catalog.plan("essentiel")
    assert essentiel.price(Interval.ANNUAL) == 19000
    assert essentiel.quota_for(Interval.MONTHLY) == 50


def test_unknown_plan_is_named() -> None:
    with pytest.raises(UnknownPlan, match="'gold'"):
        parse_catalog([plan()]).plan("gold")


def test_a_plan_may_offer_one_interval_only() -> None:
    catalog = parse_catalog([plan(prices={"monthly": 1900}, quota={"monthly": 50})])
    assert catalog.plan("essentiel").offers(Interval.MONTHLY)
    assert not catalog.plan("essentiel").offers(Interval.ANNUAL)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (plan(product="fax"), r"plan 'essentiel' \(#1\): product: "),
        (plan(prices={"monthly": -1, "annual": 19000}), r"plan 'essentiel' \(#1\): prices\.monthly: .*greater than or equal to 0"),
        (plan(prices={"monthly": 19.5, "annual": 19000}), r"plan 'essentiel' \(#1\): prices\.monthly: "),
        (plan(quota={"monthly": 50}), r"plan 'essentiel' \(#1\): .*quota: missing interval annual"),
        (plan(prices={}, quota={}), r"plan 'essentiel' \(#1\): .*offers no interval"),
        (plan(prices={"weekly": 10}, quota={"weekly": 1}), r"plan 'essentiel' \(#1\): prices\.weekly"),
        (plan(overage=-5), r"plan 'essentiel' \(#1\): overage: "),
        (plan(name=None), r"plan 'essentiel' \(#1\): name: "),
        ({"product": "einvoicing"}, r"plan #1: code: Field required"),
        (plan(colour="red"), r"colour: Extra inputs"),
    ],
)
def test_bad_plan_fails_naming_plan_and_field(bad: dict[str, object], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog([bad])


def test_duplicate_code_fails_naming_both_plans() -> None:
    with pytest.raises(CatalogError, match=r"plan 'essentiel' \(#2\): code: duplicate of plan #1"):
        parse_catalog([plan(), plan(name="Other")])


def test_empty_catalogue_is_refused() -> None:
    with pytest.raises(CatalogError, match="non-empty list"):
        parse_catalog([])


def test_unreadable_catalogue_file_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CatalogError, match="cannot read catalogue"):
        load_catalog(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("- code: [unclosed\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(broken)
