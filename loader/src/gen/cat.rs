//! Kinds of insurance (an insurer's category) and their share of the national mix.

/// Kinds of insurance, with the person share of the national mix and the mean household
/// size of each, so that households are drawn in proportion share / size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Cat {
    Kyokai,
    Society,
    Nhi,
    Late,
    Mutual,
    Seamen,
    Sdf,
    SpecialRetiree,
    NhiRetiree,
}

#[rustfmt::skip]
pub(super) const CATS: [(Cat, f64, f64); 9] = [
    (Cat::Kyokai, 30.0, 1.85), (Cat::Society, 22.0, 1.85), (Cat::Nhi, 21.0, 1.55), (Cat::Late, 15.5, 1.0),
    (Cat::Mutual, 7.0, 1.85), (Cat::Seamen, 0.4, 1.85), (Cat::Sdf, 0.8, 1.85),
    (Cat::SpecialRetiree, 0.5, 1.3), (Cat::NhiRetiree, 0.3, 1.3),
];

impl Cat {
    /// Employee-style insurance: one insured, the others dependants (personal_family 2).
    /// In NHI and late-stage elderly insurance every member is insured in their own right.
    pub(super) fn has_dependants(self) -> bool {
        !matches!(self, Cat::Nhi | Cat::Late)
    }
    /// Municipal insurance: cards expire each July, members leave it for public assistance.
    pub(super) fn municipal(self) -> bool {
        matches!(self, Cat::Nhi | Cat::Late)
    }
    pub(super) fn card_class(self) -> &'static str {
        match self {
            Cat::Sdf => "07",
            Cat::SpecialRetiree => "06",
            Cat::NhiRetiree => "02",
            _ => "01",
        }
    }
}
