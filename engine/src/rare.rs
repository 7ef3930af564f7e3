//! Lists most persons do not have (public assistance, reference numbers,
//! consents), archived as one niched pointer (format 2): 4 bytes when empty
//! instead of an `ArchivedVec`'s 8, and a pointer to an `ArchivedVec` when
//! not. Owned records keep their `Vec`; [`Rare`] is the rkyv `with` wrapper,
//! and [`ArchivedRare`] reads as a slice (`iter`, `len`, `first`, `for in &`).

use std::ops::Deref;

use rkyv::niche::option_box::{ArchivedOptionBox, OptionBoxResolver};
use rkyv::rancor::Fallible;
use rkyv::ser::Writer;
use rkyv::vec::ArchivedVec;
use rkyv::with::{ArchiveWith, DeserializeWith, SerializeWith};
use rkyv::{Archive, Deserialize, Place, Portable, Serialize};

/// A rare list as archived: null when empty.
#[derive(Portable, rkyv::bytecheck::CheckBytes)]
#[bytecheck(crate = rkyv::bytecheck)]
#[rkyv(crate = rkyv)]
#[repr(transparent)]
pub struct ArchivedRare<T>(ArchivedOptionBox<ArchivedVec<T>>);

impl<T> Deref for ArchivedRare<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], |v| v.as_slice())
    }
}

impl<'a, T> IntoIterator for &'a ArchivedRare<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ArchivedRare<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The rkyv `with` wrapper: `#[rkyv(with = Rare)]` on a `Vec` field.
#[derive(Debug)]
pub struct Rare;

impl<T: Archive> ArchiveWith<Vec<T>> for Rare {
    type Archived = ArchivedRare<T::Archived>;
    type Resolver = OptionBoxResolver;

    fn resolve_with(field: &Vec<T>, resolver: OptionBoxResolver, out: Place<Self::Archived>) {
        rkyv::munge::munge!(let ArchivedRare(inner) = out);
        ArchivedOptionBox::resolve_from_option((!field.is_empty()).then_some(field), resolver, inner);
    }
}

impl<T, S> SerializeWith<Vec<T>, S> for Rare
where
    T: Serialize<S>,
    S: Fallible + Writer + rkyv::ser::Allocator + ?Sized,
{
    fn serialize_with(field: &Vec<T>, serializer: &mut S) -> Result<OptionBoxResolver, S::Error> {
        ArchivedOptionBox::serialize_from_option((!field.is_empty()).then_some(field), serializer)
    }
}

impl<T, D> DeserializeWith<ArchivedRare<T::Archived>, Vec<T>, D> for Rare
where
    T: Archive,
    T::Archived: Deserialize<T, D>,
    D: Fallible + ?Sized,
{
    fn deserialize_with(field: &ArchivedRare<T::Archived>, deserializer: &mut D) -> Result<Vec<T>, D::Error> {
        field.iter().map(|x| x.deserialize(deserializer)).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::*;

    #[test]
    fn empty_and_full_lists_read_back() {
        let consent = Consent { institution_code: "1310000011".into(), kind: ConsentKind::Checkup, consented_at: 1, expires_at: 2 };
        for consents in [Vec::new(), vec![consent.clone()], vec![consent.clone(), consent]] {
            let r = PersonRecord { consents: consents.clone(), ..Default::default() };
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&r).unwrap();
            let a = rkyv::access::<ArchivedPersonRecord, rkyv::rancor::Error>(&bytes).unwrap();
            assert_eq!(a.consents.len(), consents.len());
            assert!(a.assistance.is_empty() && a.reference_numbers.is_empty());
            assert_eq!(rkyv::deserialize::<PersonRecord, rkyv::rancor::Error>(a).unwrap(), r);
        }
    }
}
