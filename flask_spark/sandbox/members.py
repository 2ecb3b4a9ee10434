"""The sandbox's demo members: deterministic Flexmls users to sign in as.

Each member knows how to present itself as OpenID Connect claims (the id_token / userinfo view)
and as a Spark API ``my/account`` record, so every part of the sandbox tells the same story.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The demo MLS every member belongs to (its Spark style Id and display name).
DEMO_MLS_ID = "20000426143505724028000000"
DEMO_MLS_NAME = "Demo MLS"


@dataclass(frozen=True)
class Member:
    """One Flexmls user of the demo MLS, as the Spark Platform describes them."""

    id: str
    username: str
    name: str
    first_name: str
    last_name: str
    email: str
    phone: str
    mls_id: str
    nrds_id: str
    state_license: str
    aor: str
    member_type: str
    status: str
    office_name: str
    office_key: str
    office_mls_id: str
    user_type: str
    user_level: str
    flexmls_member_type: str
    mls: str = DEMO_MLS_NAME
    mls_id_system: str = DEMO_MLS_ID
    city: str = "Fargo"
    state: str = "ND"
    aor_key: str = "20000426143505724028000001"
    primary_aor_id: str = "DAR"
    billable: bool = True

    def claims(self) -> dict[str, Any]:
        """Return the OpenID Connect claims Spark releases for this member: every claim of
        production's ``claims_supported`` but ``iss`` (standard profile, email, address and
        phone claims, then Spark's own), with values shaped like a Flexmls user's."""
        active = self.status == "Active"
        return {
            "sub": self.id,
            "name": self.name,
            "given_name": self.first_name,
            "family_name": self.last_name,
            "middle_name": "",
            "MemberNameSuffix": "",
            "preferred_username": self.username,
            "website": f"https://www.example.com/agents/{self.username}",
            "address": {
                "street_address": "100 Main Street",
                "locality": self.city,
                "region": self.state,
                "postal_code": "58102",
                "country": "US",
            },
            "phone_number": self.phone,
            "phone_number_verified": False,
            "picture": "",
            "email": self.email,
            "email_verified": True,
            "zoneinfo": "America/Chicago",
            "MemberMlsId": self.mls_id,
            "OfficeKey": self.office_key,
            "Office": self.office_name,
            "OfficeMlsId": self.office_mls_id,
            "MemberNrdsId": self.nrds_id,
            "MemberStateLicense": self.state_license,
            "MemberAOR": self.aor,
            "MemberAORkey": self.aor_key,
            "MemberPrimaryAorId": self.primary_aor_id,
            "MemberPrimaryAorKey": self.aor_key,
            "MemberType": self.member_type,
            "MemberStatus": self.status,
            "UserType": self.user_type,
            "UserLevel": self.user_level,
            "FlexmlsMemberType": self.flexmls_member_type,
            "user_is_visible": active,
            "user_profile_visible": active,
            "user_is_enabled": active,
            "user_is_active": active,
            "mls_system_access": [self.mls_id_system],
            "user_is_billable": self.billable,
        }

    def account(self) -> dict[str, Any]:
        """Return this member's Spark API ``my/account`` record (``D.Results[0]``)."""
        slug = self.username
        return {
            "ResourceUri": f"/v1/accounts/{self.id}",
            "Id": self.id,
            "Name": self.name,
            "FirstName": self.first_name,
            "MiddleName": None,
            "LastName": self.last_name,
            "Office": self.office_name,
            "OfficeId": self.office_key,
            "Company": self.office_name,
            "Mls": self.mls,
            "MlsId": self.mls_id_system,
            "UserType": self.user_type,
            "MemberType": self.member_type,
            "Emails": [
                {"Type": "Office", "Name": "Office Email", "Address": self.email, "Primary": True}
            ],
            "Phones": [
                {"Type": "Mobile", "Name": "Mobile Phone", "Number": self.phone, "Primary": True}
            ],
            "Websites": [
                {
                    "Type": "Website",
                    "Name": "Website",
                    "Uri": f"https://www.example.com/agents/{slug}",
                    "Primary": True,
                }
            ],
            "Addresses": [
                {
                    "Type": "Work",
                    "Name": "Work Address",
                    "Address": f"100 Main Street, {self.city}, {self.state} 58102",
                    "Primary": True,
                }
            ],
            "Images": [],
        }


_DEMO_REALTY = ("Demo Realty", "20050614175529284901000000", "DR01")
_LAKESIDE = ("Lakeside Brokers", "20090207112644902117000000", "LB02")

MEMBERS: tuple[Member, ...] = (
    Member(
        id="20190716183201873925000000",
        username="jane",
        name="Jane Appleseed",
        first_name="Jane",
        last_name="Appleseed",
        email="jane.appleseed@example.com",
        phone="701-555-0101",
        mls_id="JA1001",
        nrds_id="123456789",
        state_license="ND-8012345",
        aor="Demo Association of REALTORS",
        member_type="Agent",
        status="Active",
        office_name=_DEMO_REALTY[0],
        office_key=_DEMO_REALTY[1],
        office_mls_id=_DEMO_REALTY[2],
        user_type="Member",
        user_level="Agent",
        flexmls_member_type="Member",
    ),
    Member(
        id="20150312145208261583000000",
        username="bob",
        name="Bob Martinez",
        first_name="Bob",
        last_name="Martinez",
        email="bob.martinez@example.com",
        phone="701-555-0102",
        mls_id="BM2002",
        nrds_id="234567891",
        state_license="ND-8023456",
        aor="Demo Association of REALTORS",
        member_type="Broker",
        status="Active",
        office_name=_DEMO_REALTY[0],
        office_key=_DEMO_REALTY[1],
        office_mls_id=_DEMO_REALTY[2],
        user_type="Member",
        user_level="Broker",
        flexmls_member_type="Office Broker",
    ),
    Member(
        id="20200924090511447296000000",
        username="alex",
        name="Alex Kim",
        first_name="Alex",
        last_name="Kim",
        email="alex.kim@example.com",
        phone="701-555-0103",
        mls_id="AK3003",
        nrds_id="345678912",
        state_license="",
        aor="Demo Association of REALTORS",
        member_type="Assistant",
        status="Active",
        office_name=_DEMO_REALTY[0],
        office_key=_DEMO_REALTY[1],
        office_mls_id=_DEMO_REALTY[2],
        user_type="Member",
        user_level="Assistant",
        flexmls_member_type="Assistant",
        billable=False,
        city="West Fargo",
    ),
    Member(
        id="20171105221737639814000000",
        username="pat",
        name="Pat Nguyen",
        first_name="Pat",
        last_name="Nguyen",
        email="pat.nguyen@example.com",
        phone="218-555-0104",
        mls_id="PN4004",
        nrds_id="456789123",
        state_license="MN-40567890",
        aor="Lakes Area REALTORS",
        member_type="Agent",
        status="Active",
        office_name=_LAKESIDE[0],
        office_key=_LAKESIDE[1],
        office_mls_id=_LAKESIDE[2],
        user_type="Member",
        user_level="Agent",
        flexmls_member_type="Member",
        city="Moorhead",
        state="MN",
        aor_key="20030815093012551209000000",
        primary_aor_id="LAR",
    ),
)

_BY_ID: dict[str, Member] = {member.id: member for member in MEMBERS}


def get_member(member_id: str) -> Member | None:
    """Return the demo member with that Spark Id, or ``None``."""
    return _BY_ID.get(member_id)
