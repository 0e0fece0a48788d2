"""Two languages for the office pages: Vietnamese (default) and English.

A small catalog keyed by the English text; a missing Vietnamese entry shows the
English text rather than failing, and tests/sync/office/test_i18n.py keeps the
catalog complete for every string the templates and pages use.
"""

from __future__ import annotations

LANGUAGES = ("vi", "en")
DEFAULT = "vi"

VI: dict[str, str] = {
    "Education office": "Phòng/Sở Giáo dục và Đào tạo",
    "filterd office": "filterd — văn phòng",
    "Sign in": "Đăng nhập",
    "Sign out": "Đăng xuất",
    "User name": "Tên đăng nhập",
    "Password": "Mật khẩu",
    "Wrong user name or password.": "Sai tên đăng nhập hoặc mật khẩu.",
    "Too many failed sign-ins; wait 15 minutes.":
        "Đăng nhập sai quá nhiều lần; vui lòng đợi 15 phút.",
    "Today": "Hôm nay",
    "Blocks": "Lượt chặn",
    "Top categories": "Nhóm nội dung hàng đầu",
    "Bypass": "Vượt lọc",
    "List freshness": "Độ mới danh sách",
    "Yearly report": "Báo cáo năm",
    "Reports": "Báo cáo định kỳ",
    "Schools": "Trường học",
    "Reports for": "Báo cáo ngày",
    "Reported": "Đã gửi báo cáo",
    "Missing": "Chưa gửi báo cáo",
    "Missing since": "Thiếu từ ngày",
    "School": "Trường",
    "School id": "Mã trường",
    "Name": "Tên",
    "District": "Quận/huyện",
    "Province": "Tỉnh/thành phố",
    "Received at": "Nhận lúc",
    "Day": "Ngày",
    "Age group": "Nhóm tuổi",
    "Category": "Nhóm nội dung",
    "Blocked": "Bị chặn",
    "Queries": "Lượt truy vấn",
    "Blocks per category and age group by district":
        "Lượt chặn theo nhóm nội dung và nhóm tuổi, theo quận/huyện",
    "Blocks per day and category": "Lượt chặn theo ngày và nhóm nội dung",
    "Blocked names seen by at least k devices": "Tên miền bị chặn (ít nhất k thiết bị)",
    "Schools reporting it": "Số trường ghi nhận",
    "Hits": "Lượt",
    "Devices": "Thiết bị",
    "Bypass attempts per day and district": "Lượt cố vượt lọc theo ngày và quận/huyện",
    "Attempts": "Lượt thử",
    "Last report": "Báo cáo gần nhất",
    "List version": "Phiên bản danh sách",
    "List updated": "Cập nhật danh sách",
    "List age (days)": "Tuổi danh sách (ngày)",
    "Appliance version": "Phiên bản thiết bị",
    "Events dropped": "Sự kiện bị mất",
    "Upstream failures": "Lỗi máy chủ DNS gốc",
    "From": "Từ ngày",
    "To": "Đến ngày",
    "Show": "Xem",
    "Download CSV": "Tải CSV",
    "Totals per school": "Tổng theo trường",
    "Totals per district": "Tổng theo quận/huyện",
    "Days reported": "Số ngày đã báo cáo",
    "Bypass attempts": "Lượt cố vượt lọc",
    "Number of schools": "Số trường",
    "Yearly report due 15 December": "Báo cáo năm, hạn nộp 15/12",
    "Period": "Kỳ báo cáo",
    "Enrol a school": "Đăng ký trường",
    "Enrol": "Đăng ký",
    "Enrolled": "Ngày đăng ký",
    "One-time enrolment code for": "Mã đăng ký dùng một lần của",
    "Give this code to the school's IT staff; on the appliance they run: filterd enrol --code "
    "CODE. It is shown only once and works once, for 14 days.":
        "Hãy trao mã này cho cán bộ tin học của trường; trên thiết bị, chạy lệnh: filterd enrol "
        "--code MÃ. Mã chỉ hiện một lần, dùng được một lần, trong 14 ngày.",
    "never": "chưa bao giờ",
    "No data.": "Không có dữ liệu.",
    "Only administrators can do this.": "Chỉ quản trị viên được làm việc này.",
    "The form expired; please try again.": "Biểu mẫu đã hết hạn; vui lòng thử lại.",
    "All fields are required.": "Cần điền đầy đủ các trường.",
    "The office database is unavailable; please try again in a minute.":
        "Cơ sở dữ liệu của văn phòng tạm thời không truy cập được; vui lòng thử lại sau một phút.",
    'Report':
        'Báo cáo',
    'Year (1 Dec – 30 Nov)':
        'Năm (1/12 – 30/11)',
    'Quarter':
        'Quý',
    'Month':
        'Tháng',
    'Year':
        'Năm',
    'Quarter or month':
        'Quý hoặc tháng',
    'All districts':
        'Tất cả quận/huyện',
    'Document number':
        'Số văn bản',
    'Download PDF (to sign)':
        'Tải PDF (để ký)',
    'Download XLSX':
        'Tải XLSX',
    'Print preview':
        'Xem bản in',
    'Issued by':
        'Cơ quan ban hành',
    'Office settings':
        'Thiết lập cơ quan',
    'Schools reporting':
        'Số trường có báo cáo',
    'Previous period':
        'Lượt chặn kỳ trước',
    "What the reports say about the office (Decree 30/2020/NĐ-CP): the agency, the document "
    "symbol, the place and the signer.":
        "Thông tin cơ quan in trên báo cáo (Nghị định 30/2020/NĐ-CP): cơ quan ban hành, ký hiệu "
        "văn bản, địa danh và người ký.",
    'Saved.':
        'Đã lưu.',
    'Save':
        'Lưu',
    'setting:parent_agency':
        'Cơ quan chủ quản',
    'setting:agency':
        'Cơ quan ban hành',
    'setting:symbol':
        'Ký hiệu văn bản (ví dụ BC-SGDĐT)',
    'setting:place':
        'Địa danh',
    'setting:signer_title':
        'Chức vụ người ký',
    'setting:signer_name':
        'Họ tên người ký',
    'setting:recipients':
        'Kính gửi',
    'Blocked per day':
        'Lượt chặn theo ngày',
    'Blocked per category, against the previous period':
        'Lượt chặn theo nhóm nội dung, so với kỳ trước (vạch mảnh)',
    'previous period':
        'kỳ trước',
    'No such school.':
        'Không có trường này.',
    'Reporting days':
        'Số ngày đã báo cáo',
    'received':
        'nhận lúc',
    'Health':
        'Tình trạng thiết bị',
    'Uptime (hours)':
        'Thời gian chạy liên tục (giờ)',
    'No report in this period.':
        'Không có báo cáo trong kỳ.',
    'Feed versions':
        'Phiên bản dữ liệu cấp từ văn phòng',
    'Feed':
        'Dữ liệu',
    'Version':
        'Phiên bản',
    'Fetched':
        'Nhận lúc',
    'No feed fetched yet.':
        'Chưa nhận dữ liệu nào.',
    'Device coverage':
        'Số thiết bị theo nhóm tuổi (ngày gần nhất)',
    'fewer than k':
        'ít hơn k thiết bị',
    'Signing keys':
        'Khóa ký của trường',
    'Key':
        'Khóa',
    'State':
        'Trạng thái',
    'revoked':
        'đã thu hồi',
    'in use':
        'đang dùng',
    'Not enrolled yet: give the school its one-time code.':
        'Chưa đăng ký khóa: hãy trao cho trường mã đăng ký dùng một lần.',
    'feed:protected':
        'Danh sách bảo vệ',
    'feed:deny':
        'Bổ sung danh sách chặn',
    'feed:allow':
        'Bổ sung danh sách cho phép',
    'feed:education':
        'Trang giáo dục',
    'feed:notices':
        'Thông báo',
    # feeds to schools and reports of harmful sites (feed_pages.py)
    "A notice for the schools' IT staff": "Thông báo cho cán bộ CNTT các trường",
    "A notice needs a title.": "Thông báo cần có tiêu đề.",
    "Accept: block in every school": "Chấp nhận: chặn ở mọi trường",
    "Accepted": "Đã chấp nhận",
    "Accepted: added to the deny feed for every school.":
        "Đã chấp nhận: đã thêm vào danh sách chặn gửi mọi trường.",
    "Add to the current version": "Thêm vào phiên bản hiện tại",
    "Allow additions": "Bổ sung danh sách cho phép",
    "Behind": "Chưa cập nhật",
    "Decision": "Quyết định",
    "Deny additions": "Bổ sung danh sách chặn",
    "Domain names, one per line": "Tên miền, mỗi dòng một tên",
    "Education allowlist additions": "Bổ sung danh sách trang giáo dục",
    "Entries": "Số mục",
    "Every school's appliance fetches these lists, signed with the office's key, every 15 "
    "minutes and with its daily sync. The protected list is above every school's allow list "
    "and every teacher's override.":
        "Thiết bị của mỗi trường tải các danh sách này (có chữ ký số của Phòng/Sở) 15 phút một "
        "lần và mỗi lần đồng bộ hằng ngày. Danh sách nội dung bị cấm đứng trên mọi danh sách "
        "cho phép của trường và mọi lệnh mở tạm thời của giáo viên.",
    "Feed list": "Danh sách",
    "Feeds": "Danh sách gửi trường",
    "Feeds to schools": "Danh sách gửi các trường",
    "For whom (e.g. Sở GD&ĐT Hà Nội)": "Áp dụng cho (ví dụ: Sở GD&ĐT Hà Nội)",
    "No reports.": "Không có báo cáo.",
    "No school enrolled yet.": "Chưa có trường nào đăng ký.",
    "Not published": "Chưa phát hành",
    "Notes": "Ghi chú",
    "Notices for IT staff": "Thông báo cho cán bộ CNTT",
    "Notices sent": "Thông báo đã gửi",
    "Office key": "Khóa của Phòng/Sở",
    "Other": "Khác",
    "Protected list (illegal content)": "Danh sách nội dung vi phạm pháp luật",
    "Publish the next version": "Phát hành phiên bản mới",
    "Published": "Phát hành lúc",
    "Published version": "Đã phát hành phiên bản",
    "Reject": "Từ chối",
    "Rejected": "Đã từ chối",
    "Rejected.": "Đã từ chối.",
    "Remove from the current version": "Bỏ khỏi phiên bản hiện tại",
    "Replace the whole list": "Thay toàn bộ danh sách",
    "Reports made on the schools' report forms by students, teachers and parents. No "
    "reporter, device or address reaches the office. Accepting a site adds it to the deny "
    "feed: every school blocks it at its next pull.":
        "Báo cáo do học sinh, giáo viên và phụ huynh gửi qua biểu mẫu của các trường. Văn phòng "
        "không nhận được người báo cáo, thiết bị hay địa chỉ nào. Chấp nhận một trang sẽ thêm "
        "trang vào danh sách chặn: mọi trường chặn trang ở lần tải danh sách tiếp theo.",
    "Reported on": "Ngày báo cáo",
    "Number of reports": "Số báo cáo",
    "Reports of harmful sites": "Báo cáo trang web có hại",
    "Harmful sites": "Trang có hại",
    "Schools and the versions they run": "Các trường và phiên bản đang dùng",
    "Sign and publish": "Ký và phát hành",
    "Site": "Trang web",
    "Text": "Nội dung",
    "Title": "Tiêu đề",
    "Up to date": "Đã cập nhật",
    "Waiting for a decision": "Chờ quyết định",
    "What is wrong": "Vấn đề của trang",
}

# keys that are not English text themselves
EN: dict[str, str] = {
    'feed:protected': 'Protected list',
    'feed:deny': 'Deny additions',
    'feed:allow': 'Allow additions',
    'feed:education': 'Education sites',
    'feed:notices': 'Notices',
    'setting:parent_agency': 'Governing body',
    'setting:agency': 'Issuing agency',
    'setting:symbol': 'Document symbol (e.g. BC-SGDĐT)',
    'setting:place': 'Place',
    'setting:signer_title': "Signer's title",
    'setting:signer_name': "Signer's name",
    'setting:recipients': 'Addressed to',
}


def translate(text: str, lang: str) -> str:
    if lang == "vi":
        return VI.get(text, text)
    return EN.get(text, text)
